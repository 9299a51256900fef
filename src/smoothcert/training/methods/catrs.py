"""CAT-RS (Jeong et al., AAAI 2023; ``code/train_catrs.py`` and its ``KL_PGD``): per example, the
confidence ``c`` (share of the k copies predicted ``y``), ``K ~ Bin(k, c)`` clipped to at least 1,
``L_low = 1/k * (the K smallest CE over the copies)``, and where ``K = k``,
``L_high = max_j KL(pi(x) || softmax f(x + delta*_j))`` with ``delta*_j`` the noise attacked by
:func:`catrs_noise_attack` and ``pi(x)`` the smoothed prediction of a Gaussian model at sigma 0.25
(``catrs_votes``); the loss is ``L_low + lam * 1{K = k} L_high``.

The clean copies go through the model in train mode; the noise of every example of the chunk is
attacked in eval mode and the attacked copies go through the model in train mode, whatever ``K``
is (the mask acts in the loss only); each loader batch is split into ``k`` chunks, one SGD step
each (their ``_chunk_minibatch``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from smoothcert.training.attacks import frozen, in_eval_mode, per_example_norm
from smoothcert.training.methods.base import Method, StepInputs, by_sigma
from smoothcert.training.objectives import LossParts, check_logits, perturbed_risk
from smoothcert.rules import NON_NEGATIVE, POSITIVE, POSITIVE_INT

if TYPE_CHECKING:
    from smoothcert.training.config import TrainConfig


def _rescaled_to(moved: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """``mu0 + (moved - mu) * r0 / r`` per sample: ``moved`` centred and scaled by the ratio of
    the root mean squares ``r0 = sqrt(mean(original^2))``, ``r = sqrt(mean(moved^2))``, then
    shifted to the mean ``mu0`` of ``original`` (the authors' ``KL_PGD``)."""
    dims = tuple(range(1, moved.ndim))
    ratio = original.square().mean(dim=dims, keepdim=True).sqrt() / moved.square().mean(dim=dims, keepdim=True).sqrt().clamp_min(1e-12)
    return (moved - moved.mean(dim=dims, keepdim=True)) * ratio + original.mean(dim=dims, keepdim=True)


def catrs_noise_attack(model: torch.nn.Module, x: torch.Tensor, noise: torch.Tensor, target: torch.Tensor, eps: float,
                       steps: int) -> torch.Tensor:
    """The attack on the noise: for each copy ``delta_j`` of ``noise`` ``(B, k, ...)``, ``steps``
    ascent steps of size ``2 eps / steps`` on ``KL(target || softmax f(x + delta))`` (``target`` a
    ``(B, C)`` distribution) along the per-copy l2-normalized gradient, each projected to the
    eps-ball around ``delta_j`` and rescaled to the mean and root mean square of ``delta_j`` (per
    copy, after every step: :func:`_rescaled_to`). Returns the attacked noise, detached; no
    parameter gets a gradient."""
    POSITIVE.check("eps", eps)
    POSITIVE_INT.check("steps", steps)
    copies = noise.shape[1]
    flat_noise = noise.detach().flatten(0, 1)
    inputs = x.detach().unsqueeze(1).expand_as(noise).flatten(0, 1)
    log_target = torch.log(target.clamp_min(1e-12)).repeat_interleave(copies, dim=0)
    with frozen(model):
        attacked = flat_noise.clone()
        for _ in range(steps):
            attacked.requires_grad_(True)
            log_p = F.log_softmax(model(inputs + attacked), dim=-1)
            kl = (log_target.exp() * (log_target - log_p)).sum()
            (grad,) = torch.autograd.grad(kl, attacked)
            with torch.no_grad():
                moved = attacked + (2 * eps / steps) * grad / per_example_norm(grad).clamp_min(1e-12)
                delta = moved - flat_noise
                attacked = _rescaled_to(flat_noise + delta * (eps / per_example_norm(delta).clamp_min(eps)), flat_noise)
        return attacked.detach().view_as(noise)


def catrs_low_confidence(logits: torch.Tensor, labels: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """``1/k * (sum of the kept[i] smallest cross-entropies over the copies)`` per example
    (``L_low``); ``kept`` is clipped to ``[1, k]``."""
    check_logits(logits, labels)
    batch, copies, classes = logits.shape
    per_copy = F.cross_entropy(logits.reshape(-1, classes), labels.repeat_interleave(copies), reduction="none").view(batch, copies)
    ranked = per_copy.sort(dim=1).values
    taken = torch.arange(copies, device=logits.device).view(1, -1) < kept.clamp(1, copies).view(-1, 1)
    return (ranked * taken).sum(dim=1) / copies


def catrs_high_confidence(adversarial_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``max_j KL(target || softmax f(x + delta*_j))`` per example (``L_high``), from the
    ``(B, k, C)`` logits of the attacked copies and the ``(B, C)`` smoothed predictions."""
    log_target = torch.log(target.clamp_min(1e-12)).unsqueeze(1)
    kl = (target.unsqueeze(1) * (log_target - F.log_softmax(adversarial_logits, dim=-1))).sum(dim=-1)
    return kl.amax(dim=1)


def catrs_loss(logits: torch.Tensor, adversarial_logits: torch.Tensor | None, labels: torch.Tensor, target: torch.Tensor,
               kept: torch.Tensor, lam: float) -> LossParts:
    """CAT-RS's loss (module docstring) on a batch: ``mean_i [L_low_i + lam * 1{K_i = k} L_high_i]``;
    ``adversarial_logits`` None: the first term alone."""
    NON_NEGATIVE.check("lam", lam)
    copies = logits.shape[1]
    low = catrs_low_confidence(logits, labels, kept)
    confident = kept.clamp(1, copies) == copies
    loss = low
    if adversarial_logits is not None and lam:
        loss = low + lam * torch.where(confident, catrs_high_confidence(adversarial_logits, target), torch.zeros_like(low))
    return LossParts.of(loss, logits, labels, perturbed_risk(logits, labels))


class CatRS(Method):
    name = "catrs"
    description = "CAT-RS (Jeong et al. 2023): the confident examples' attacked noise pulled to a Gaussian model's smoothed prediction"
    chunked_by_copies = True
    soft_targets = True

    def defaults(self, sigma: float) -> dict[str, Any]:
        """The authors' commands (``EXPERIMENTS.MD``): m = 4, eps 1.0 (256 / 256), T = 4, lambda 0.5 / 1.0 / 2.0."""
        return dict(k=4, eps=1.0, attack_steps=4, lam=by_sigma(sigma, (0.5, 1.0, 2.0)))

    def problems(self, config: TrainConfig) -> list[str]:
        if config.eps and config.catrs_votes:
            return []
        return [f"method 'catrs' needs eps > 0 (the attack on the noise) and catrs_votes (--catrs-votes, the smoothed "
                f"predictions of smoothcert votes --split train), got eps={config.eps}, catrs_votes={config.catrs_votes!r}"]

    def draws(self, config: TrainConfig, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Uniforms whose count below the confidence ``c`` is ``K ~ Bin(k, c)``."""
        return torch.rand((config.batch_size, config.k), generator=generator, device=device)

    def step(self, model: torch.nn.Module, attacked: torch.nn.Module, batch: StepInputs, config: TrainConfig,
             epoch: int) -> LossParts:
        logits = batch.logits(model)
        confidence = (logits.detach().argmax(dim=-1) == batch.labels.view(-1, 1)).float().mean(dim=1, keepdim=True)
        kept = (batch.extra < confidence).sum(dim=1)
        adversarial_logits = None
        if config.lam:
            with in_eval_mode(attacked):
                attacked_noise = catrs_noise_attack(attacked, batch.x, batch.noise, batch.target, config.eps, config.attack_steps)
            adversarial_logits = batch.logits(model, noise=attacked_noise)
        return catrs_loss(logits, adversarial_logits, batch.labels, batch.target, kept, config.lam)


METHOD = CatRS()
