"""ADRE_ADV (the spec, Feng et al.: eq. 12-13): SmoothAdv's attack on eq. 12's objective with the
ADRE term, then ADRE_REG's loss ``l_per - lambda * l_adre`` on the adversary's noisy copies. One
SGD step per batch (Algorithm 1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from smoothcert.training.methods.base import Method, StepInputs
from smoothcert.training.methods.smoothadv import attacked_inputs
from smoothcert.training.objectives import LossParts, regularized_risk

if TYPE_CHECKING:
    from smoothcert.training.config import TrainConfig


class AdreAdv(Method):
    name = "adre_adv"
    description = "ADRE_ADV (Feng et al., eq. 12-13): ADRE_REG's loss on the noisy copies of eq. 12's adversary"
    regularized = True

    def problems(self, config: TrainConfig) -> list[str]:
        return ((["method 'adre_adv' needs lam > 0 (lam = 0 is smoothadv)"] if not config.lam else [])
                + (["method 'adre_adv' needs eps > 0 (eps = 0 is adre)"] if not config.eps else []))

    def step(self, model: torch.nn.Module, attacked: torch.nn.Module, batch: StepInputs, config: TrainConfig,
             epoch: int) -> LossParts:
        adversarial = attacked_inputs(attacked, batch, config, epoch, lam=config.lam)
        return regularized_risk(adversarial.logits(model), batch.labels, config.lam, single_draw=batch.draw, adre_cap=config.adre_cap,
                                label_smoothing=config.label_smoothing)


METHOD = AdreAdv()
