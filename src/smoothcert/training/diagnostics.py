"""Per-epoch training statistics and what they say about divergence: a non-finite loss stops the
run; a collapse of the accuracy under noise, or ``l_adre`` running away, is warned about.

Faithful ADRE (eq. 5 with cross-entropy) is unbounded below: on an example whose k noisy copies
are all classified correctly, ``-lam * l_adre -> -inf`` as the logits grow. So the share of such
examples (``all_correct``) and the largest logit (``max_logit``) are logged every epoch.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch

from smoothcert.training.config import ADRE_CAP, TrainConfig
from smoothcert.training.methods import method_named
from smoothcert.training.objectives import LossParts

EPOCH_STATS = ("loss", "l_per", "l_adre", "train_noisy_acc", "all_correct", "max_logit", "adre_capped")
"""Per-epoch training statistics, means over the epoch's batches: the loss and its parts, the
share of noisy copies classified correctly, the share of examples with every copy correct (where
ADRE's objective is unbounded below), the mean of each example's largest logit and the share of
examples at which the ADRE cap was active (0 in every epoch: the run is also a faithful run)."""
RUNAWAY_L_ADRE = 30.0
"""Mean ``l_adre`` of an epoch above which the run is warned that ADRE is running away: the
plug-in runner-up probability is below ``exp(-30)``, far past anything a float32 softmax resolves."""
COLLAPSE_SHARE = 0.5
"""An epoch whose training accuracy under noise is below this share of the best so far is
reported as a collapse."""


class TrainingDiverged(FloatingPointError):
    """The loss became non-finite; the checkpoint of the last finished epoch is kept."""


def batch_stats(parts: LossParts) -> torch.Tensor:
    """One batch's :data:`EPOCH_STATS`, in that order, on the device (no host synchronization)."""
    return torch.stack([parts.loss.detach(), parts.l_per.mean(), parts.l_adre.mean(), parts.correct.mean(),
                        parts.all_correct.mean(), parts.max_logit.mean(), parts.capped.mean()])


def named_stats(sums: torch.Tensor, batches: int) -> dict[str, float]:
    """The means of :data:`EPOCH_STATS` over ``batches`` batches, by name."""
    return dict(zip(EPOCH_STATS, (sums / batches).tolist()))


def refuse_non_finite(stats: dict[str, float], config: TrainConfig, epoch: int, checkpoint_path: Path) -> None:
    """Raise :class:`TrainingDiverged` if a statistic of epoch ``epoch`` (from 0) is not finite."""
    if all(math.isfinite(v) for v in stats.values()):
        return
    hint = ("ADRE's regularized risk is unbounded below (eq. 5 with cross-entropy: -lam * l_adre -> -inf as the logits "
            f"grow on examples classified correctly under all noise); bound it with --adre-cap (e.g. {ADRE_CAP} = -log 0.001) or "
            "lower lam" if method_named(config.method).regularized else "lower the learning rate (--lr)")
    kept = f"the checkpoint of epoch {epoch} is kept" if epoch else "no checkpoint was written"
    raise TrainingDiverged(f"the loss became non-finite in epoch {epoch + 1} ({config.method}, lam={config.lam}); {kept} "
                           f"at {checkpoint_path}; {hint}")


def warn_of_divergence(stats: dict[str, float], best_accuracy: float, config: TrainConfig, epoch: int) -> None:
    """Warn when the accuracy under noise of epoch ``epoch`` (from 0) collapsed below
    :data:`COLLAPSE_SHARE` of ``best_accuracy``, or faithful ADRE's ``l_adre`` passed :data:`RUNAWAY_L_ADRE`."""
    accuracy, regularized = stats["train_noisy_acc"], method_named(config.method).regularized
    if accuracy < COLLAPSE_SHARE * best_accuracy:
        warnings.warn(f"epoch {epoch + 1}: accuracy under noise collapsed from {best_accuracy:.3f} to {accuracy:.3f}"
                      + (f"; ADRE's objective is unbounded below, consider --adre-cap {ADRE_CAP} or a smaller lam" if regularized else ""),
                      RuntimeWarning, stacklevel=3)
    if regularized and config.adre_cap is None and stats["l_adre"] > RUNAWAY_L_ADRE:
        warnings.warn(f"epoch {epoch + 1}: mean l_adre = {stats['l_adre']:.1f} is running away (runner-up probability below "
                      f"exp(-{RUNAWAY_L_ADRE:.0f})); ADRE's objective is unbounded below and the logits are growing without limit. "
                      f"Consider --adre-cap {ADRE_CAP}.", RuntimeWarning, stacklevel=3)
