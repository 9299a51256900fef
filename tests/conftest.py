import os
import pickle
import sys
from pathlib import Path

if os.environ.get("SMOOTHCERT_TEST_CUDA") != "1":  # before torch is imported: the suite runs on the CPU, where its
    os.environ["CUDA_VISIBLE_DEVICES"] = ""           # exact-equality assertions hold (subprocesses inherit it)

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` run only with ``SMOOTHCERT_TEST_CUDA=1`` on a machine with a GPU
    (``benchmarks/gpu_check.sh``)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device and SMOOTHCERT_TEST_CUDA=1 (benchmarks/gpu_check.sh)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    """A batch in the format of the python version of CIFAR-10."""
    entry = {b"batch_label": path.name.encode(), b"labels": labels, b"data": images.reshape(len(labels), -1),
             b"filenames": [f"img{i}.png".encode() for i in range(len(labels))]}
    with path.open("wb") as handle:
        pickle.dump(entry, handle, protocol=2)


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    """A tiny stand-in for cifar-10-batches-py: 5 training batches of 8 images and a test batch of 6."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, size in [(f"data_batch_{i}", 8) for i in range(1, 6)] + [("test_batch", 6)]:
        write_cifar_batch(folder / name, rng.integers(0, 256, (size, 3, 32, 32), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, size)])
    return tmp_path


@pytest.fixture
def colour_digits(tmp_path):
    """A learnable stand-in for cifar-10-batches-py: 200 training and 20 test images whose class
    is written in their brightness, so that a few steps of training do better than chance."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, size in [(f"data_batch_{i}", 40) for i in range(1, 6)] + [("test_batch", 20)]:
        labels = rng.integers(0, 10, size)
        images = np.clip(labels[:, None, None, None] * 25 + rng.integers(0, 20, (size, 3, 32, 32)), 0, 255).astype(np.uint8)
        write_cifar_batch(folder / name, images, [int(v) for v in labels])
    return tmp_path


@pytest.fixture
def imagenet_dir(tmp_path: Path) -> Path:
    """A tiny stand-in for the ImageNet folders: 3 classes, JPEGs of various sizes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, per_class in (("train", 3), ("val", 2)):
        for wnid in ("n01440764", "n01443537", "n01484850"):
            folder = tmp_path / split / wnid
            folder.mkdir(parents=True)
            for i in range(per_class):
                size = (int(rng.integers(230, 300)), int(rng.integers(230, 300)))
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{wnid}_{i}.JPEG")
    return tmp_path


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """A small CNN trained for one epoch on the embedded digits at sigma = 0.5, shared by the tests
    that only read it (a test module may define its own)."""
    from smoothcert.cli import main

    out = tmp_path_factory.mktemp("shared") / "run"
    assert main(["train", "--epochs", "1", "--sigma", "0.5", "--out-dir", str(out), "--quiet"]) == 0
    return out / "checkpoint.pt"
