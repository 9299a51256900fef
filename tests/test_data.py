import pytest
import torch

from smoothcert.data import dataset_info, load_dataset


def test_embedded_mnist_split_is_fixed_balanced_and_disjoint():
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    assert len(train) == 4000 and len(test) == 1000
    assert train.tensors[1].bincount().tolist() == [400] * 10
    assert test.tensors[1].bincount().tolist() == [100] * 10
    x, y = train[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    again = load_dataset("mnist", "test")
    assert torch.equal(again.tensors[0], test.tensors[0])
    train_keys = {bytes(img.numpy().tobytes()) for img in train.tensors[0]}
    assert not any(bytes(img.numpy().tobytes()) in train_keys for img in test.tensors[0][:200])


def test_cifar10_reads_the_python_batches(cifar_dir):
    train = load_dataset("cifar10", "train", cifar_dir)
    test = load_dataset("cifar10", "test", cifar_dir / "cifar-10-batches-py")  # the folder itself works too
    assert len(train) == 40 and len(test) == 6
    x, y = test[2]
    assert x.shape == (3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert isinstance(y, int)
    raw = test.images[2].float() / 255
    assert torch.equal(x, raw)  # no augmentation at test time
    torch.manual_seed(0)
    crops = [train[0][0] for _ in range(10)]
    assert any(not torch.equal(c, train.images[0].float() / 255) for c in crops)  # random crop / flip in training


def test_cifar10_errors_name_the_expected_layout(tmp_path, cifar_dir):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_dataset("cifar10", "train", tmp_path / "nowhere")
    (cifar_dir / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_dataset("cifar10", "train", cifar_dir)
    (cifar_dir / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch"):
        load_dataset("cifar10", "test", cifar_dir)


def test_imagenet_reads_class_folders(imagenet_dir):
    train = load_dataset("imagenet", "train", imagenet_dir)
    val = load_dataset("imagenet", "test", imagenet_dir)
    assert len(train) == 9 and len(val) == 6
    assert train.classes == val.classes
    x, y = val[0]
    assert x.shape == (3, 224, 224) and 0 <= x.min() and x.max() <= 1
    assert train[4][0].shape == (3, 224, 224)


def test_imagenet_errors_name_the_expected_layout(tmp_path, imagenet_dir):
    with pytest.raises(FileNotFoundError, match="'train' and 'val'"):
        load_dataset("imagenet", "train", tmp_path / "nowhere")
    empty = tmp_path / "empty"
    (empty / "val").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="class folders"):
        load_dataset("imagenet", "test", empty)


def test_bad_dataset_requests():
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_info("svhn")
    with pytest.raises(ValueError, match="split"):
        load_dataset("mnist", "validation")
    with pytest.raises(ValueError, match="data_dir"):
        load_dataset("cifar10", "train")
