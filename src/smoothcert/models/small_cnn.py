"""A small BatchNorm-free convolutional network for 28x28 grey digits, cheap enough to train
and certify on a CPU."""

from __future__ import annotations

from torch import nn


def small_cnn(num_classes: int = 10, in_channels: int = 1, batch_norm: bool = False) -> nn.Module:
    """Two strided 3x3 convolutions (32 and 64 channels, 28 -> 14 -> 7) and two linear layers
    (about 0.42 M parameters); ``batch_norm`` puts a BatchNorm after each convolution and the
    first linear layer (the ablation of docs/results-cifar10.md: does BatchNorm hold ADRE?)."""
    def norm(layer: nn.Module, features: int, kind: type[nn.Module]) -> list[nn.Module]:
        return [layer, kind(features), nn.ReLU()] if batch_norm else [layer, nn.ReLU()]

    return nn.Sequential(
        *norm(nn.Conv2d(in_channels, 32, 3, stride=2, padding=1), 32, nn.BatchNorm2d),
        *norm(nn.Conv2d(32, 64, 3, stride=2, padding=1), 64, nn.BatchNorm2d),
        nn.Flatten(),
        *norm(nn.Linear(64 * 7 * 7, 128), 128, nn.BatchNorm1d),
        nn.Linear(128, num_classes),
    )
