"""SmoothAdv (Salman et al., NeurIPS 2019; ``code/train_pgd.py`` with ``--train-multi-noise``):
``l_per`` on the noisy copies of ``x_adv``, found by l2 PGD on the plug-in smoothed classifier.

The attack (eq. 12-13 of the spec, which ADRE_ADV shares) maximizes, over ``||x' - x||_2 <= eps``,
``CE(G_hat(x'), y) - lam * CE(G_hat(x'), argmax_{c != y} G_hat(x'))`` (``lam = 0`` is SmoothAdv's
objective), the ADRE term capped at ``adre_cap`` when the training loss caps it, so that attack and
loss use the same objective, where ``G_hat(x') = 1/k sum_j softmax(F(x' + delta_j))`` uses the same
noise ``delta_j`` at every step. Each step (eq. 13) moves by ``step_size`` along the l2-normalized
gradient, projects back onto the eps-ball around ``x`` and clips to the pixel box [0, 1] (which
keeps it in the ball, since ``x`` is in the box). The model attacks in eval mode (``train_pgd.py``
switches to it around the attack); its radius ramps up over ``eps_warmup`` epochs (their
``--warmup``); each loader batch is split into ``k`` chunks, one SGD step each (their
``get_minibatches``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from smoothcert.training.attacks import frozen, in_eval_mode, per_example_norm
from smoothcert.training.methods.base import Method, StepInputs
from smoothcert.training.objectives import LossParts, adre_term, regularized_risk, smoothed_log_probs
from smoothcert.training.schedules import attack_radius
from smoothcert.rules import NON_NEGATIVE, NON_NEGATIVE_INT

if TYPE_CHECKING:
    from smoothcert.training.config import TrainConfig


def smoothed_attack_objective(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor, lam: float,
                              adre_cap: float | None = None) -> torch.Tensor:
    """Eq. 12's objective per example, for inputs ``x`` ``(B, ...)`` and noise ``(B, k, ...)``."""
    log_g = smoothed_log_probs(StepInputs(x, labels, noise).logits(model))
    objective = F.nll_loss(log_g, labels, reduction="none")
    if lam:
        objective = objective - lam * adre_term(log_g, labels, adre_cap)
    return objective


def smoothed_pgd(
    model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor,
    eps: float, steps: int, lam: float = 0.0, step_size: float | None = None, adre_cap: float | None = None,
) -> torch.Tensor:
    """``steps`` steps of l2 PGD of size ``step_size`` (default ``2 eps / steps``, as in the paper)
    starting at ``x``; returns the adversarial inputs, detached. The model's parameters receive no
    gradient and its train/eval mode is left as the caller set it."""
    NON_NEGATIVE.check("eps", eps)
    NON_NEGATIVE_INT.check("steps", steps)
    if eps == 0 or steps == 0:
        return x.detach()
    step_size = 2 * eps / steps if step_size is None else step_size
    with frozen(model):
        adversarial = x.detach().clone()
        for _ in range(steps):
            adversarial.requires_grad_(True)
            objective = smoothed_attack_objective(model, adversarial, labels, noise, lam, adre_cap).sum()
            (grad,) = torch.autograd.grad(objective, adversarial)
            with torch.no_grad():
                moved = adversarial + step_size * grad / per_example_norm(grad).clamp_min(1e-12)
                delta = moved - x
                delta = delta * (eps / per_example_norm(delta).clamp_min(eps))
                adversarial = (x + delta).clamp(0.0, 1.0)
        return adversarial.detach()


def attacked_inputs(attacked: torch.nn.Module, batch: StepInputs, config: TrainConfig, epoch: int, lam: float) -> StepInputs:
    """``batch`` with its inputs replaced by eq. 12's adversary at the epoch's radius (eval mode)."""
    with in_eval_mode(attacked):
        x = smoothed_pgd(attacked, batch.x, batch.labels, batch.noise, attack_radius(config, epoch), config.attack_steps, lam=lam,
                         adre_cap=config.adre_cap)
    return StepInputs(x, batch.labels, batch.noise, batch.draw, batch.extra, batch.target)


class SmoothAdv(Method):
    name = "smoothadv"
    description = "SmoothAdv (Salman et al. 2019): cross-entropy of the noisy copies of the smoothed classifier's PGD adversary"
    chunked_by_copies = True

    def problems(self, config: TrainConfig) -> list[str]:
        return [] if config.eps else ["method 'smoothadv' needs eps > 0 (eps = 0 is basic)"]

    def step(self, model: torch.nn.Module, attacked: torch.nn.Module, batch: StepInputs, config: TrainConfig,
             epoch: int) -> LossParts:
        adversarial = attacked_inputs(attacked, batch, config, epoch, lam=0.0)
        return regularized_risk(adversarial.logits(model), batch.labels, 0.0, single_draw=batch.draw,
                                label_smoothing=config.label_smoothing)


METHOD = SmoothAdv()
