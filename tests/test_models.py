import warnings

import pytest
import torch

from smoothcert.models import ARCHITECTURES, Normalize, build_model
from smoothcert.models.cifar_resnet import BasicBlock, CifarResNet


@pytest.mark.parametrize("arch,shape,classes", [
    ("small_cnn", (1, 28, 28), 10), ("small_cnn_bn", (1, 28, 28), 10), ("cifar_resnet20", (3, 32, 32), 10),
    ("cifar_resnet110", (3, 32, 32), 10), ("resnet50", (3, 64, 64), 7),
])
def test_architectures_map_inputs_to_logits_behind_a_normalization(arch, shape, classes):
    model = build_model(arch, classes, [0.5] * shape[0], [0.25] * shape[0]).eval()
    assert isinstance(model[0], Normalize)
    with torch.no_grad():
        assert model(torch.rand(2, *shape)).shape == (2, classes)


def test_normalization_is_channelwise_standardization():
    layer = Normalize([0.1, 0.2, 0.3], [0.5, 0.25, 2.0])
    x = torch.rand(2, 3, 4, 4)
    want = (x - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(layer(x), want)
    with pytest.raises(ValueError, match="positive std"):
        Normalize([0.1], [0.0])


def test_cifar_resnet_depths_follow_he_et_al():
    for depth in (20, 56, 110):
        blocks = sum(isinstance(m, BasicBlock) for m in CifarResNet(depth).modules())
        assert blocks == (depth - 2) // 2  # three stages of (depth - 2) / 6 blocks of two layers
    with pytest.raises(ValueError, match="6m \\+ 2"):
        CifarResNet(21)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("vgg", 10, [0.5], [0.5])
    assert set(ARCHITECTURES) >= {"small_cnn", "cifar_resnet110", "resnet50"}


def test_fast_options_compute_nearly_the_same_logits():
    from smoothcert.smoothing.fast import FastOptions, apply_fast_options, native_bf16

    torch.manual_seed(0)
    model = build_model("cifar_resnet20", 10, [0.5] * 3, [0.25] * 3)
    for module in model.modules():  # BatchNorm statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    model.eval()
    x = torch.rand(64, 3, 32, 32)
    with torch.inference_mode():
        reference = model(x)
        for options in (FastOptions(fold_bn=True), FastOptions(channels_last=True), FastOptions(fold_bn=True, channels_last=True)):
            fast = apply_fast_options(model, options)
            torch.testing.assert_close(fast(x), reference, rtol=1e-4, atol=1e-4)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in apply_fast_options(model, FastOptions(fold_bn=True)).modules())
        # bfloat16 on the CPU: logits within bfloat16's resolution, the same class almost everywhere
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # emulated on CPUs without bfloat16 units
            low = apply_fast_options(model, FastOptions(bf16=True))(x)
        assert low.dtype == torch.float32
        torch.testing.assert_close(low, reference, rtol=0.05, atol=0.05)
    if not native_bf16(torch.device("cpu")):
        with pytest.warns(RuntimeWarning, match="no bfloat16 units"):
            apply_fast_options(model, FastOptions(bf16=True))
    assert FastOptions.all_for(torch.device("cpu")).bf16 == native_bf16(torch.device("cpu"))
    with pytest.raises(ValueError, match="eval mode"):
        apply_fast_options(model.train(), FastOptions(fold_bn=True))
