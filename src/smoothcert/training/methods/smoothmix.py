"""SmoothMix (Jeong et al., NeurIPS 2021; ``code/train.py``, its ``SmoothMix_PGD`` and
``_mixup_data``): per example ``1/k sum_j CE(f(x0 + delta_j), y) + eta * w * 1{argmax pbar = y} *
1/k sum_j KL(t || softmax f(x_mix + delta_j))`` with

- ``x0`` the mixup start: ``x`` (``mix_start = 0``), or the first attack iterate projected to the
  l2 ball of radius ``w * alpha`` around ``x`` (``mix_start = 1``: the authors' ``maxnorm_s =
  warmup_v * alpha * mix_step``; their attack returns it in place of ``x``, so it also enters the
  cross-entropy term);
- ``x_mix = (1 - l) x0 + l x_adv``, ``x_adv`` the last of ``T`` ascent steps of size ``alpha`` on
  ``-log G_hat(x')[y]`` (:func:`smoothmix_path`), ``l ~ U[0, 1/2]`` per example;
- the target ``t = (1 - l) pbar + l / C``, ``pbar`` the mean softmax of the ``x0`` copies, NOT
  detached (their ``F.kl_div`` back-propagates into it);
- ``w = min(1, (epoch + 1) / mix_warmup)`` the warm-up weight.

The attack runs in eval mode; each loader batch is split into ``k`` chunks, one SGD step each
(their ``_chunk_minibatch``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from smoothcert.training.attacks import frozen, in_eval_mode, per_example_norm
from smoothcert.training.methods.base import Method, StepInputs, by_sigma
from smoothcert.training.methods.smoothadv import smoothed_attack_objective
from smoothcert.training.objectives import LossParts, check_logits, perturbed_risk
from smoothcert.training.schedules import mixup_weight
from smoothcert.rules import NON_NEGATIVE, POSITIVE, POSITIVE_INT

if TYPE_CHECKING:
    from smoothcert.training.config import TrainConfig


def smoothmix_path(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor, steps: int,
                   step_size: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SmoothMix's attack: ``steps`` ascent steps of size ``step_size`` on ``-log G_hat(x')[y]``
    along the per-example l2-normalized gradient, with the same noise at every step, each iterate
    clipped to [0, 1] and no eps-ball (the authors' default). Returns the first iterate and the
    last, detached; the model's parameters receive no gradient."""
    POSITIVE_INT.check("steps", steps)
    POSITIVE.check("step_size", step_size)
    with frozen(model):
        iterate, first = x.detach().clone(), None
        for _ in range(steps):
            iterate.requires_grad_(True)
            objective = smoothed_attack_objective(model, iterate, labels, noise, 0.0).sum()
            (grad,) = torch.autograd.grad(objective, iterate)
            with torch.no_grad():
                iterate = (iterate + step_size * grad / per_example_norm(grad).clamp_min(1e-12)).clamp(0.0, 1.0)
            first = iterate if first is None else first
        return first.detach(), iterate.detach()


def project_to_ball(point: torch.Tensor, centre: torch.Tensor, radius: float) -> torch.Tensor:
    """``point`` moved onto the l2 ball of ``radius`` around ``centre`` where it lies outside
    (per example: ``centre + (point - centre) * min(1, radius / ||point - centre||)``), then clipped
    to the pixel box [0, 1]: SmoothMix's projection of its mixup start (the authors' ``_project``)."""
    NON_NEGATIVE.check("radius", radius)
    if radius == 0:
        return centre.detach().clone()
    delta = point - centre
    return (centre + delta * (radius / per_example_norm(delta).clamp_min(radius))).clamp(0.0, 1.0).detach()


def smoothmix_loss(clean_logits: torch.Tensor, mix_logits: torch.Tensor, labels: torch.Tensor, mix_weight: torch.Tensor, eta: float,
                   warm_up: float = 1.0) -> LossParts:
    """SmoothMix's loss (module docstring) on a batch: ``clean_logits`` and ``mix_logits`` are the
    ``(B, k, C)`` logits of ``x0 + delta_j`` and ``x_mix + delta_j``, ``mix_weight`` the ``l`` of
    each example, ``warm_up`` the epoch's weight ``w`` of the mixup term."""
    check_logits(clean_logits, labels)
    check_logits(mix_logits, labels)
    NON_NEGATIVE.check("eta", eta)
    NON_NEGATIVE.check("warm_up", warm_up)
    classes = clean_logits.shape[-1]
    pbar = F.softmax(clean_logits, dim=-1).mean(dim=1)  # not detached: the target carries the clean copies' gradient
    weight = mix_weight.view(-1, 1).to(pbar.dtype)
    target = (1 - weight) * pbar + weight / classes
    log_mix = F.log_softmax(mix_logits, dim=-1)
    kl = (target.unsqueeze(1) * (torch.log(target).unsqueeze(1) - log_mix)).sum(dim=-1).mean(dim=1)
    counted = (pbar.argmax(dim=1) == labels).to(kl.dtype)
    cross_entropy = perturbed_risk(clean_logits, labels)
    return LossParts.of(cross_entropy + eta * warm_up * counted * kl, clean_logits, labels, cross_entropy)


class SmoothMix(Method):
    name = "smoothmix"
    description = "SmoothMix (Jeong et al. 2021): cross-entropy plus a mixup towards the smoothed classifier's adversary"
    chunked_by_copies = True

    def defaults(self, sigma: float) -> dict[str, Any]:
        """The authors' CIFAR-10 commands (``EXPERIMENTS.MD``): m = 2, T = 4, alpha 0.5 / 1.0 / 2.0, eta 5."""
        return dict(k=2, eta=5.0, mix_steps=4, mix_step_size=by_sigma(sigma, (0.5, 1.0, 2.0)))

    def draws(self, config: TrainConfig, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """The mixing weight ``l ~ U[0, 1/2]`` of each example."""
        return 0.5 * torch.rand((config.batch_size,), generator=generator, device=device)

    def step(self, model: torch.nn.Module, attacked: torch.nn.Module, batch: StepInputs, config: TrainConfig,
             epoch: int) -> LossParts:
        with in_eval_mode(attacked):
            first, last = smoothmix_path(attacked, batch.x, batch.labels, batch.noise, config.mix_steps, config.mix_step_size)
        warm_up = mixup_weight(config, epoch)
        start = batch.x if config.mix_start == 0 else project_to_ball(first, batch.x, warm_up * config.mix_step_size)
        weight = batch.extra.view(-1, *([1] * (batch.x.ndim - 1)))
        mixed = (1 - weight) * start + weight * last
        return smoothmix_loss(batch.logits(model, start), batch.logits(model, mixed), batch.labels, batch.extra, config.eta, warm_up)


METHOD = SmoothMix()
