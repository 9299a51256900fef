"""Consistency regularization (Jeong & Shin, NeurIPS 2020; ``code/train_consistency.py`` and
``code/consistency.py``): per example ``1/k sum_j CE(f(x + delta_j), y) + lam * 1/k sum_j
KL(pbar || s_j) + eta * H(pbar)``, ``s_j = softmax(f(x + delta_j))``, ``pbar = 1/k sum_j s_j`` (not
held fixed): cross-entropy on every copy, the copies pulled towards their mean, the mean's entropy
kept low. Each loader batch is split into ``k`` chunks, one SGD step each (their
``_chunk_minibatch``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from smoothcert.training.methods.base import Method, StepInputs, by_sigma
from smoothcert.training.objectives import LossParts, check_logits, perturbed_risk
from smoothcert.rules import NON_NEGATIVE

if TYPE_CHECKING:
    from smoothcert.training.config import TrainConfig

ENTROPY_FLOOR = 1e-20
"""``pbar`` is clamped below at this value inside the logarithm of the entropy (the authors' code)."""


def consistency_loss(logits: torch.Tensor, labels: torch.Tensor, lam: float, eta: float = 0.5) -> LossParts:
    """Consistency regularization (module docstring) on a batch: ``mean_i [1/k sum_j CE_ij
    + lam * 1/k sum_j KL(pbar_i || s_ij) + eta * H(pbar_i)]``."""
    check_logits(logits, labels)
    NON_NEGATIVE.check("lam", lam)
    NON_NEGATIVE.check("eta", eta)
    log_s = F.log_softmax(logits, dim=-1)
    pbar = log_s.exp().mean(dim=1)
    log_pbar = torch.log(pbar.clamp(min=ENTROPY_FLOOR))
    kl = (pbar.unsqueeze(1) * (log_pbar.unsqueeze(1) - log_s)).sum(dim=-1).mean(dim=1)
    entropy = -(pbar * log_pbar).sum(dim=-1)
    cross_entropy = perturbed_risk(logits, labels)
    return LossParts.of(cross_entropy + lam * kl + eta * entropy, logits, labels, cross_entropy)


class Consistency(Method):
    name = "consistency"
    description = "Consistency (Jeong & Shin 2020): cross-entropy, the copies' KL to their mean and the mean's entropy"
    chunked_by_copies = True

    def defaults(self, sigma: float) -> dict[str, Any]:
        """The authors' CIFAR-10 commands (``EXPERIMENTS.MD``): m = 2, lambda 20 / 10 / 10, eta 0.5."""
        return dict(k=2, lam=by_sigma(sigma, (20.0, 10.0, 10.0)), eta=0.5)

    def problems(self, config: TrainConfig) -> list[str]:
        if not config.eps:
            return []
        return [f"method 'consistency' takes no eps (got eps={config.eps}): the authors' Consistency over SmoothAdv "
                f"(--adv-training) uses its own copies, lambda, radius and 10 attack steps, which smoothcert does not implement; "
                f"train 'consistency' without eps, or 'smoothadv'"]

    def step(self, model: torch.nn.Module, attacked: torch.nn.Module, batch: StepInputs, config: TrainConfig,
             epoch: int) -> LossParts:
        return consistency_loss(batch.logits(model), batch.labels, config.lam, config.eta)


METHOD = Consistency()
