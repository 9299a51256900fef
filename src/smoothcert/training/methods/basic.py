"""Basic: Gaussian data augmentation (Cohen et al., ICML 2019; their ``code/train.py``): the
cross-entropy of every noisy copy, ``l_per`` of eq. 7."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from smoothcert.training.methods.base import Method, StepInputs
from smoothcert.training.objectives import LossParts, regularized_risk

if TYPE_CHECKING:
    from smoothcert.training.config import TrainConfig


class Basic(Method):
    name = "basic"
    description = "Gaussian augmentation (Cohen et al. 2019): cross-entropy of each noisy copy"

    def step(self, model: torch.nn.Module, attacked: torch.nn.Module, batch: StepInputs, config: TrainConfig,
             epoch: int) -> LossParts:
        return regularized_risk(batch.logits(model), batch.labels, 0.0, single_draw=batch.draw, label_smoothing=config.label_smoothing)


METHOD = Basic()
