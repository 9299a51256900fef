"""Clean: standard training without noise, the cross-entropy of each clean input. Not a smoothing
method: it trains the classifier that denoised smoothing puts behind a denoiser (Salman et al.
2020 smooth classifiers trained this way; :mod:`smoothcert.denoising`). ``sigma`` only names the
level a later certification defaults to."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from smoothcert.training.methods.base import Method, StepInputs
from smoothcert.training.objectives import LossParts, regularized_risk

if TYPE_CHECKING:
    from smoothcert.training.config import TrainConfig


class Clean(Method):
    name = "clean"
    description = "standard training without noise: cross-entropy of each clean input (a classifier for denoised smoothing)"

    def problems(self, config: TrainConfig) -> list[str]:
        return [] if config.k == 1 else [f"method 'clean' trains on the clean inputs alone: leave k at 1, got k={config.k}"]

    def step(self, model: torch.nn.Module, attacked: torch.nn.Module, batch: StepInputs, config: TrainConfig,
             epoch: int) -> LossParts:
        return regularized_risk(model(batch.x).unsqueeze(1), batch.labels, 0.0, label_smoothing=config.label_smoothing)


METHOD = Clean()
