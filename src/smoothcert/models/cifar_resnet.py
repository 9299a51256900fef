"""The CIFAR ResNets of He et al. (2016), depth 6m + 2 (20, 56, 110): a 3x3 convolution to 16
channels, then three stages of m basic blocks with 16, 32 and 64 channels, the second and third
starting at stride 2; shortcuts that change shape are 1x1 convolutions with BatchNorm.

The module names are those of the checkpoints Cohen et al. and Salman et al. released
(``conv1``, ``bn1``, ``layer1..3.<i>.conv1/bn1/conv2/bn2/downsample.0/1``, ``fc``), so their
state dicts load as they are.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.downsample(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"a CIFAR ResNet has depth 6m + 2 (20, 56, 110, ...), got {depth}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_channels = 16
        for number, (channels, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
            stage = []
            for i in range(blocks):
                stage.append(BasicBlock(in_channels, channels, stride if i == 0 else 1))
                in_channels = channels
            self.add_module(f"layer{number}", nn.Sequential(*stage))
        self.fc = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
