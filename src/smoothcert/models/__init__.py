"""Architectures by name, each wrapped as ``Sequential(Normalize(mean, std), net)``."""

from __future__ import annotations

from typing import Callable, Sequence

from torch import nn
from torchvision.models import resnet50

from smoothcert.models.cifar_resnet import CifarResNet
from smoothcert.models.normalize import Normalize
from smoothcert.models.small_cnn import small_cnn

ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {
    "small_cnn": lambda num_classes: small_cnn(num_classes),
    "small_cnn_bn": lambda num_classes: small_cnn(num_classes, batch_norm=True),
    "cifar_resnet20": lambda num_classes: CifarResNet(20, num_classes),
    "cifar_resnet56": lambda num_classes: CifarResNet(56, num_classes),
    "cifar_resnet110": lambda num_classes: CifarResNet(110, num_classes),
    "resnet50": lambda num_classes: resnet50(weights=None, num_classes=num_classes),
}


def build_model(arch: str, num_classes: int, mean: Sequence[float], std: Sequence[float]) -> nn.Sequential:
    """The network ``arch`` for ``num_classes`` classes behind a standardization layer."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    return nn.Sequential(Normalize(mean, std), ARCHITECTURES[arch](num_classes))


__all__ = ["ARCHITECTURES", "CifarResNet", "Normalize", "build_model"]
