"""Channel-wise standardization as the first layer of every model.

Noise is added to inputs in pixel space ([0, 1]); standardizing inside the model keeps the
certified radius in those original coordinates, as in Cohen et al. and Salman et al.
"""

from __future__ import annotations

from typing import Sequence

import torch


class Normalize(torch.nn.Module):
    """``(x - mean[c]) / std[c]`` for each channel ``c`` of an ``(N, C, H, W)`` batch."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"mean and std need one entry per channel and positive std, got {mean} and {std}")
        # constants of the dataset, not learned: kept out of the state dict, as in the released
        # checkpoints of Cohen et al., whose model keys therefore all start with "1."
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
