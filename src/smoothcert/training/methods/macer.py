"""MACER (Zhai et al., ICLR 2020; their ``main.py`` and ``macer.py``): per example
``-log(pbar[y] + 1e-10) + lam * sigma / 2 * (gamma - xi)``, ``pbar = 1/k sum_j softmax(f(x + delta_j))``,
the second term only where the beta-tempered score ``qbar = 1/k sum_j softmax(beta f(x + delta_j))``
ranks ``y`` first and ``xi = Phi^-1(qbar_(1)) - Phi^-1(qbar_(2))`` (its top two values) is finite
and at most ``gamma``: a hinge on the radius of the tempered soft smoothed classifier. One SGD step
per loader batch (``macer.py``'s ``macer_train``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from smoothcert.training.methods.base import Method, StepInputs, by_sigma
from smoothcert.training.objectives import LossParts, check_logits
from smoothcert.rules import NON_NEGATIVE, POSITIVE

if TYPE_CHECKING:
    from smoothcert.training.config import TrainConfig

GAMMA = 8.0
"""The hinge on the tempered margin (Zhai et al.'s ``--gamma``)."""
BETA = 16.0
"""The temperature of the robustness term's soft smoothed classifier (their ``--beta``)."""
PBAR_FLOOR = 1e-10
"""Added to ``pbar[y]`` inside MACER's logarithm (the authors' code)."""


def macer_margin(logits: torch.Tensor, labels: torch.Tensor, beta: float, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example, ``xi = Phi^-1(qbar_(1)) - Phi^-1(qbar_(2))`` of the beta-tempered score and the
    mask of the examples MACER's robustness term counts: ``qbar`` ranks ``y`` first, ``xi`` is
    finite and ``xi <= gamma``. ``xi`` is 0 where the mask is off, with a finite gradient (the
    authors' code drops those rows before ``Phi^-1``; here they pass through it at 1/2)."""
    qbar = F.softmax(beta * logits, dim=-1).mean(dim=1)
    top, index = qbar.topk(2, dim=1)
    with torch.no_grad():
        xi = torch.special.ndtri(top[:, 0]) - torch.special.ndtri(top[:, 1])
        counted = (index[:, 0] == labels) & torch.isfinite(xi) & (xi <= gamma)
    # uncounted rows go through Phi^-1 at 1/2, so that no infinite derivative meets a zero weight
    safe = torch.where(counted.unsqueeze(1), top, torch.full_like(top, 0.5))
    return torch.special.ndtri(safe[:, 0]) - torch.special.ndtri(safe[:, 1]), counted


def macer_loss(logits: torch.Tensor, labels: torch.Tensor, sigma: float, lam: float, gamma: float = GAMMA,
               beta: float = BETA) -> LossParts:
    """MACER's loss (module docstring) on a batch of ``(B, k, C)`` logits: ``mean_i [-log(pbar_i[y_i]
    + 1e-10) + lam * sigma / 2 * (gamma - xi_i) * counted_i]``."""
    check_logits(logits, labels)
    POSITIVE.check("sigma", sigma)
    NON_NEGATIVE.check("lam", lam)
    POSITIVE.check("gamma", gamma)
    POSITIVE.check("beta", beta)
    pbar = F.softmax(logits, dim=-1).mean(dim=1)
    classification = -torch.log(pbar.gather(1, labels.view(-1, 1)).squeeze(1) + PBAR_FLOOR)
    xi, counted = macer_margin(logits, labels, beta, gamma)
    robustness = torch.where(counted, sigma / 2 * (gamma - xi), torch.zeros_like(xi))
    return LossParts.of(classification + lam * robustness, logits, labels, classification)


class Macer(Method):
    name = "macer"
    description = "MACER (Zhai et al. 2020): -log of the smoothed score plus a hinge on the soft smoothed classifier's radius"

    def defaults(self, sigma: float) -> dict[str, Any]:
        """Zhai et al.'s ``main.py``: 16 copies, lambda 12 (sigma 0.25); lambda 4 at larger sigma as
        later reimplementations (gamma and beta: :data:`GAMMA`, :data:`BETA`)."""
        return dict(k=16, lam=by_sigma(sigma, (12.0, 4.0, 4.0)))

    def step(self, model: torch.nn.Module, attacked: torch.nn.Module, batch: StepInputs, config: TrainConfig,
             epoch: int) -> LossParts:
        return macer_loss(batch.logits(model), batch.labels, config.sigma, config.lam, config.gamma, config.beta)


METHOD = Macer()
