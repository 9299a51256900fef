"""DnCNN (Zhang et al. 2017) as Salman et al. build it for denoised smoothing
(``code/archs/dncnn.py`` of microsoft/denoised-smoothing, lines 14-52): a first convolution with
bias and ReLU, ``depth - 2`` blocks of convolution (no bias), BatchNorm (eps 1e-4, momentum
0.95, their values) and ReLU, a last convolution (no bias) predicting the noise, and the residual
``x - noise``. Convolutions are initialized orthogonally and the last one at zero, so that an
untrained denoiser is the identity. Their network has depth 17 and 64 channels; ours defaults to
a CPU-sized 8 and 32 (:class:`~smoothcert.denoising.config.DenoiserConfig`)."""

from __future__ import annotations

from torch import Tensor, nn

BN_EPS, BN_MOMENTUM = 1e-4, 0.95
"""The BatchNorm settings of Salman et al.'s DnCNN (``dncnn.py``, line 29)."""


class DnCNN(nn.Module):
    """A residual denoiser of ``channels``-channel images: ``x - net(x)``."""

    def __init__(self, channels: int, depth: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width, eps=BN_EPS, momentum=BN_MOMENTUM),
                       nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, channels, 3, padding=1, bias=False))
        self.net = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.orthogonal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.zeros_(layers[-1].weight)

    def forward(self, x: Tensor) -> Tensor:
        return x - self.net(x)
