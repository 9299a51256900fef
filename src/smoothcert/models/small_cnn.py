"""A small BatchNorm-free convolutional network for 28x28 grey digits, cheap enough to train
and certify on a CPU."""

from __future__ import annotations

from torch import nn


def small_cnn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """Two strided 3x3 convolutions (32 and 64 channels, 28 -> 14 -> 7) and two linear layers
    (about 0.42 M parameters)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        nn.Linear(128, num_classes),
    )
