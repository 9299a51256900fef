"""l2 PGD on the plug-in smoothed classifier (SmoothAdv, Salman et al.; ADRE_ADV, eq. 12-13).

The attack maximizes, over ``||x' - x||_2 <= eps``,
``CE(G_hat(x'), y) - lam * CE(G_hat(x'), argmax_{c != y} G_hat(x'))`` (eq. 12; ``lam = 0`` is
SmoothAdv's objective), the ADRE term capped at ``adre_cap`` when the training loss caps it, so
that attack and loss use the same objective, where ``G_hat(x') = 1/k sum_j softmax(F(x' + delta_j))`` uses the same
noise ``delta_j`` at every step. Each step (eq. 13) moves by ``step_size`` along the l2-normalized
gradient, projects back onto the eps-ball around ``x`` and clips to the pixel box [0, 1] (which
keeps it in the ball, since ``x`` is in the box).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F

from smoothcert.training.objectives import adre_term, smoothed_log_probs
from smoothcert.validators import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT


def smoothed_attack_objective(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor, lam: float,
                              adre_cap: float | None = None) -> torch.Tensor:
    """Eq. 12's objective per example, for inputs ``x`` ``(B, ...)`` and noise ``(B, k, ...)``."""
    batch, copies = noise.shape[:2]
    logits = model((x.unsqueeze(1) + noise).flatten(0, 1)).view(batch, copies, -1)
    log_g = smoothed_log_probs(logits)
    objective = F.nll_loss(log_g, labels, reduction="none")
    if lam:
        objective = objective - lam * adre_term(log_g, labels, adre_cap)
    return objective


def _per_example_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


@contextmanager
def _frozen(model: torch.nn.Module) -> Iterator[None]:
    """The model's parameters take no gradient inside the block; their flags are restored after."""
    requires_grad = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), requires_grad):
            p.requires_grad_(flag)


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
    with _frozen(model):
        adversarial = x.detach().clone()
        for _ in range(steps):
            adversarial.requires_grad_(True)
            objective = smoothed_attack_objective(model, adversarial, labels, noise, lam, adre_cap).sum()
            (grad,) = torch.autograd.grad(objective, adversarial)
            with torch.no_grad():
                moved = adversarial + step_size * grad / _per_example_norm(grad).clamp_min(1e-12)
                delta = moved - x
                delta = delta * (eps / _per_example_norm(delta).clamp_min(eps))
                adversarial = (x + delta).clamp(0.0, 1.0)
        return adversarial.detach()


def smoothmix_path(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor, steps: int,
                   step_size: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SmoothMix's attack (Jeong et al., 2021): ``steps`` ascent steps of size ``step_size`` on
    ``-log G_hat(x')[y]`` along the per-example l2-normalized gradient, with the same noise at every
    step, each iterate clipped to [0, 1] and no eps-ball. Returns the first iterate and the last,
    detached; the model's parameters receive no gradient."""
    POSITIVE_INT.check("steps", steps)
    POSITIVE.check("step_size", step_size)
    with _frozen(model):
        iterate, first = x.detach().clone(), None
        for _ in range(steps):
            iterate.requires_grad_(True)
            objective = smoothed_attack_objective(model, iterate, labels, noise, 0.0).sum()
            (grad,) = torch.autograd.grad(objective, iterate)
            with torch.no_grad():
                iterate = (iterate + step_size * grad / _per_example_norm(grad).clamp_min(1e-12)).clamp(0.0, 1.0)
            first = iterate if first is None else first
        return first.detach(), iterate.detach()


def project_to_ball(point: torch.Tensor, centre: torch.Tensor, radius: float) -> torch.Tensor:
    """``point`` moved onto the l2 ball of ``radius`` around ``centre`` where it lies outside
    (per example: ``centre + (point - centre) * min(1, radius / ||point - centre||)``), then clipped
    to the pixel box [0, 1]: SmoothMix's projection of its mixup start (the authors' ``_project``)."""
    NON_NEGATIVE.check("radius", radius)
    delta = point - centre
    if radius == 0:
        return centre.detach().clone()
    return (centre + delta * (radius / _per_example_norm(delta).clamp_min(radius))).clamp(0.0, 1.0).detach()


def _rescaled_to(moved: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """``mu0 + (moved - mu) * r0 / r`` per sample: ``moved`` centred and scaled by the ratio of
    the root mean squares ``r0 = sqrt(mean(original^2))``, ``r = sqrt(mean(moved^2))``, then
    shifted to the mean ``mu0`` of ``original`` (CAT-RS's authors' code)."""
    dims = tuple(range(1, moved.ndim))
    ratio = original.square().mean(dim=dims, keepdim=True).sqrt() / moved.square().mean(dim=dims, keepdim=True).sqrt().clamp_min(1e-12)
    return (moved - moved.mean(dim=dims, keepdim=True)) * ratio + original.mean(dim=dims, keepdim=True)


def catrs_noise_attack(model: torch.nn.Module, x: torch.Tensor, noise: torch.Tensor, target: torch.Tensor, eps: float,
                       steps: int) -> torch.Tensor:
    """CAT-RS's attack on the noise (Jeong et al., 2023): for each copy ``delta_j`` of ``noise``
    ``(B, k, ...)``, ``steps`` ascent steps of size ``2 eps / steps`` on
    ``KL(target || softmax f(x + delta))`` (``target`` a ``(B, C)`` distribution, the smoothed
    prediction of a Gaussian model) along the per-copy l2-normalized gradient, each projected to
    the eps-ball around ``delta_j`` and rescaled to the mean and root mean square of ``delta_j``
    (per copy, after every step, as the authors' code: :func:`_rescaled_to`). Returns the attacked
    noise, detached; no parameter gets a gradient."""
    POSITIVE.check("eps", eps)
    POSITIVE_INT.check("steps", steps)
    copies = noise.shape[1]
    flat_noise = noise.detach().flatten(0, 1)
    inputs = x.detach().unsqueeze(1).expand_as(noise).flatten(0, 1)
    log_target = torch.log(target.clamp_min(1e-12)).repeat_interleave(copies, dim=0)
    with _frozen(model):
        attacked = flat_noise.clone()
        for _ in range(steps):
            attacked.requires_grad_(True)
            log_p = F.log_softmax(model(inputs + attacked), dim=-1)
            kl = (log_target.exp() * (log_target - log_p)).sum()
            (grad,) = torch.autograd.grad(kl, attacked)
            with torch.no_grad():
                moved = attacked + (2 * eps / steps) * grad / _per_example_norm(grad).clamp_min(1e-12)
                delta = moved - flat_noise
                attacked = _rescaled_to(flat_noise + delta * (eps / _per_example_norm(delta).clamp_min(eps)), flat_noise)
        return attacked.detach().view_as(noise)
