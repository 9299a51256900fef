"""Training objectives of the field, on the logits of ``k`` noisy copies of each example (a
``(B, k, C)`` tensor), written from the papers and the formulas their authors' code computes.
Notation: ``s_j = softmax(f(x + delta_j))``, ``pbar = 1/k sum_j s_j``.

- MACER (Zhai et al., 2020): ``-log(pbar[y] + 1e-10) + lam * sigma / 2 * (gamma - xi)`` per
  example, the second term only where the beta-tempered score
  ``qbar = 1/k sum_j softmax(beta f(x + delta_j))`` ranks ``y`` first and
  ``xi = Phi^-1(qbar_(1)) - Phi^-1(qbar_(2))`` (its top two values) is finite and at most
  ``gamma``: a hinge on the radius of the tempered soft smoothed classifier.
- Consistency (Jeong & Shin, 2020): ``1/k sum_j CE(f(x + delta_j), y) + lam * 1/k sum_j KL(pbar || s_j)
  + eta * H(pbar)``: cross-entropy on every copy, the copies pulled towards their mean, the mean's
  entropy kept low.

- SmoothMix (Jeong et al., 2021): ``1/k sum_j CE(f(x + delta_j), y) + eta * w * 1{argmax pbar = y}
  * 1/k sum_j KL(t || softmax f(x_mix + delta_j))``, with ``x_mix = (1 - l) x_init + l x_adv`` on
  the path of :func:`smoothcert.training.attacks.smoothmix_path`, ``l ~ U[0, 1/2]`` per example,
  the target ``t = (1 - l) pbar + l / C`` (``pbar`` of the clean copies, not detached: the
  authors' ``F.kl_div`` back-propagates into it) and ``w`` the warm-up weight of the epoch.
- CAT-RS (Jeong et al., 2023): per example, the confidence ``c`` (share of the k copies predicted
  ``y``), ``K ~ Bin(k, c)`` clipped to at least 1, ``L_low = 1/k * (the K smallest CE over the
  copies)``, and where ``K = k``, ``L_high = max_j KL(pi(x) || softmax f(x + delta*_j))`` with
  ``delta*_j`` from :func:`smoothcert.training.attacks.catrs_noise_attack` and ``pi(x)`` the
  smoothed prediction of a Gaussian model; the loss is ``L_low + lam * 1{K = k} L_high``.

All return :class:`~smoothcert.training.objectives.LossParts` (``loss`` is the batch mean).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from smoothcert.training.objectives import LossParts, check_logits, perturbed_risk
from smoothcert.validators import NON_NEGATIVE, POSITIVE

PBAR_FLOOR = 1e-10
"""Added to ``pbar[y]`` inside MACER's logarithm (the authors' code)."""
ENTROPY_FLOOR = 1e-20
"""``pbar`` is clamped below at this value inside the logarithm of Consistency's entropy."""


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


def macer_loss(logits: torch.Tensor, labels: torch.Tensor, sigma: float, lam: float, gamma: float = 8.0,
               beta: float = 16.0) -> LossParts:
    """MACER's loss (module docstring) on a batch: ``mean_i [-log(pbar_i[y_i] + 1e-10)
    + lam * sigma / 2 * (gamma - xi_i) * counted_i]``."""
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


def smoothmix_loss(clean_logits: torch.Tensor, mix_logits: torch.Tensor, labels: torch.Tensor, mix_weight: torch.Tensor, eta: float,
                   warm_up: float = 1.0) -> LossParts:
    """SmoothMix's loss (module docstring) on a batch: ``clean_logits`` and ``mix_logits`` are the
    ``(B, k, C)`` logits of ``x + delta_j`` and ``x_mix + delta_j``, ``mix_weight`` the ``l`` of
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


def catrs_low_confidence(logits: torch.Tensor, labels: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """``1/k * (sum of the kept[i] smallest cross-entropies over the copies)`` per example
    (CAT-RS's ``L_low``); ``kept`` is clipped to ``[1, k]``."""
    check_logits(logits, labels)
    batch, copies, classes = logits.shape
    per_copy = F.cross_entropy(logits.reshape(-1, classes), labels.repeat_interleave(copies), reduction="none").view(batch, copies)
    ranked = per_copy.sort(dim=1).values
    taken = torch.arange(copies, device=logits.device).view(1, -1) < kept.clamp(1, copies).view(-1, 1)
    return (ranked * taken).sum(dim=1) / copies


def catrs_high_confidence(adversarial_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``max_j KL(target || softmax f(x + delta*_j))`` per example (CAT-RS's ``L_high``), from the
    ``(B, k, C)`` logits of the attacked copies and the ``(B, C)`` smoothed predictions."""
    log_target = torch.log(target.clamp_min(1e-12)).unsqueeze(1)
    kl = (target.unsqueeze(1) * (log_target - F.log_softmax(adversarial_logits, dim=-1))).sum(dim=-1)
    return kl.amax(dim=1)


def catrs_loss(logits: torch.Tensor, adversarial_logits: torch.Tensor | None, labels: torch.Tensor, target: torch.Tensor,
               kept: torch.Tensor, lam: float) -> LossParts:
    """CAT-RS's loss (module docstring) on a batch: ``mean_i [L_low_i + lam * 1{K_i = k} L_high_i]``;
    ``adversarial_logits`` may be None when no example has ``K = k``."""
    NON_NEGATIVE.check("lam", lam)
    copies = logits.shape[1]
    low = catrs_low_confidence(logits, labels, kept)
    confident = kept.clamp(1, copies) == copies
    loss = low
    if adversarial_logits is not None and lam:
        loss = low + lam * torch.where(confident, catrs_high_confidence(adversarial_logits, target), torch.zeros_like(low))
    return LossParts.of(loss, logits, labels, perturbed_risk(logits, labels))


__all__ = ["macer_loss", "consistency_loss", "macer_margin", "smoothmix_loss", "catrs_loss", "catrs_low_confidence",
           "catrs_high_confidence"]
