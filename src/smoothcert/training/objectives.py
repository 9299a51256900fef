"""The training objectives of Algorithm 1 of the spec, on the logits of ``k`` noisy copies of
each example: a tensor of shape ``(B, k, C)``.

- perturbed risk (eq. 3), estimated by eq. 7: ``l_per = 1/k sum_j CE(F(x + delta_j), y)``;
- the plug-in smoothed score (eq. 8): ``G_hat = 1/k sum_j softmax(F(x + delta_j))``;
- the ADRE term (eq. 4, 6): ``l_adre = CE(G_hat, argmax_{c != y} G_hat) = -log G_hat[y_hat]``;
- the regularized risk (eq. 5-6): ``l_per - lambda * l_adre``, averaged over the batch.

``l_adre`` is unbounded above, so the regularized risk is unbounded below: once every noisy copy
of an example is classified correctly, scaling the logits up sends ``-lambda * l_adre`` to minus
infinity (docs/results.md measures it on the embedded MNIST digits). ``adre_cap`` bounds ``l_adre`` per
example (``min(l_adre, cap)``), which turns the term into a margin hinge: it stops rewarding an
example once its plug-in runner-up probability is below ``exp(-cap)``. It is off by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossParts:
    """The batch loss and its per-example parts (``(B,)`` tensors, detached)."""

    loss: torch.Tensor
    l_per: torch.Tensor
    l_adre: torch.Tensor
    correct: torch.Tensor
    """Share of each example's noisy copies that the base classifier gets right."""
    all_correct: torch.Tensor
    """1 where every noisy copy of the example is classified correctly (where eq. 5 with
    cross-entropy is unbounded below), else 0."""
    max_logit: torch.Tensor
    """The largest logit over the example's copies and classes: the scale the runaway grows."""
    capped: torch.Tensor
    """1 where the ADRE cap was active (the uncapped ``l_adre`` above it), else 0. A capped run
    in which it stayed 0 at every step took the faithful objective's steps, bit for bit."""

    @classmethod
    def of(cls, loss_per_example: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, l_per: torch.Tensor,
           l_adre: torch.Tensor | None = None, capped: torch.Tensor | None = None) -> "LossParts":
        """The batch mean of ``loss_per_example`` with the diagnostics every objective reports."""
        hits = (logits.detach().argmax(dim=-1) == labels.view(-1, 1)).float()
        zeros = torch.zeros_like(l_per.detach())
        return cls(loss=loss_per_example.mean(), l_per=l_per.detach(), l_adre=zeros if l_adre is None else l_adre.detach(),
                   correct=hits.mean(dim=1), all_correct=hits.amin(dim=1), max_logit=logits.detach().flatten(1).amax(dim=1),
                   capped=zeros if capped is None else capped.detach().float())


def check_logits(logits: torch.Tensor, labels: torch.Tensor) -> None:
    """Refuse logits not of shape ``(B, k, C)`` or labels not of shape ``(B,)``."""
    if logits.ndim != 3 or labels.shape != logits.shape[:1]:
        raise ValueError(f"expected logits of shape (B, k, C) and labels of shape (B,), got {tuple(logits.shape)} and {tuple(labels.shape)}")


def perturbed_risk(
    logits: torch.Tensor, labels: torch.Tensor, single_draw: torch.Tensor | None = None, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Eq. 7 per example: the mean cross-entropy over the ``k`` noisy copies; or, when
    ``single_draw`` (a ``(B,)`` index tensor) is given, the cross-entropy of copy
    ``single_draw[i]`` of example ``i`` alone (the variant of the paper's Table 1).
    ``label_smoothing`` is the paper's ImageNet recipe (0.1)."""
    check_logits(logits, labels)
    batch, copies, classes = logits.shape
    per_copy = F.cross_entropy(logits.reshape(-1, classes), labels.repeat_interleave(copies), reduction="none",
                               label_smoothing=label_smoothing).view(batch, copies)
    if single_draw is None:
        return per_copy.mean(dim=1)
    return per_copy.gather(1, single_draw.view(-1, 1)).squeeze(1)


def smoothed_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """``log G_hat`` of eq. 8, computed in log space: ``logsumexp_j log_softmax(z_j) - log k``."""
    return torch.logsumexp(F.log_softmax(logits, dim=-1), dim=1) - math.log(logits.shape[1])


def runner_up(log_g: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``argmax_{c != y} G_hat^c``: the most probable wrong class of each example."""
    return log_g.scatter(1, labels.view(-1, 1), float("-inf")).argmax(dim=1)


def adre_term(log_g: torch.Tensor, labels: torch.Tensor, cap: float | None = None) -> torch.Tensor:
    """``l_adre = -log G_hat[argmax_{c != y} G_hat]`` per example (eq. 6's ``P_i``), optionally
    capped at ``cap``."""
    term = -log_g.gather(1, runner_up(log_g.detach(), labels).view(-1, 1)).squeeze(1)
    return term.clamp(max=cap) if cap is not None else term


def regularized_risk(
    logits: torch.Tensor, labels: torch.Tensor, lam: float,
    single_draw: torch.Tensor | None = None, adre_cap: float | None = None, label_smoothing: float = 0.0,
) -> LossParts:
    """Eq. 5-6 on a batch: ``mean_i (l_per_i - lam * l_adre_i)``, with ``l_adre_i`` capped at
    ``adre_cap`` where one is given (the parts mark the examples where it was active). With
    ``lam = 0`` and one copy it is Basic Gaussian augmentation (Cohen et al.)."""
    l_per = perturbed_risk(logits, labels, single_draw, label_smoothing)
    if not lam:
        return LossParts.of(l_per, logits, labels, l_per)
    uncapped = adre_term(smoothed_log_probs(logits), labels)
    if adre_cap is None:
        return LossParts.of(l_per - lam * uncapped, logits, labels, l_per, uncapped)
    l_adre = uncapped.clamp(max=adre_cap)
    return LossParts.of(l_per - lam * l_adre, logits, labels, l_per, l_adre, capped=uncapped.detach() > adre_cap)
