"""ADRE_REG (the spec, Feng et al.: eq. 5-8, Algorithm 1): ``l_per - lambda * l_adre`` on the
noisy copies, ``l_adre`` optionally capped per example
(:func:`~smoothcert.training.objectives.regularized_risk`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from smoothcert.training.methods.base import Method, StepInputs
from smoothcert.training.objectives import LossParts, regularized_risk

if TYPE_CHECKING:
    from smoothcert.training.config import TrainConfig


class Adre(Method):
    name = "adre"
    description = "ADRE_REG (Feng et al., eq. 5-8): l_per - lambda * l_adre"
    regularized = True

    def problems(self, config: TrainConfig) -> list[str]:
        return [] if config.lam else ["method 'adre' needs lam > 0 (lam = 0 is basic)"]

    def step(self, model: torch.nn.Module, attacked: torch.nn.Module, batch: StepInputs, config: TrainConfig,
             epoch: int) -> LossParts:
        return regularized_risk(batch.logits(model), batch.labels, config.lam, single_draw=batch.draw, adre_cap=config.adre_cap,
                                label_smoothing=config.label_smoothing)


METHOD = Adre()
