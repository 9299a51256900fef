"""What changes from epoch to epoch: the learning rate, the radius of the training attack, the
weight of the regularizer and SmoothMix's mixup weight."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smoothcert.training.config import TrainConfig


def learning_rate_factor(config: TrainConfig, epoch: int) -> float:
    """Multiplier of ``config.lr`` in epoch ``epoch`` (from 0). ``step``: ``gamma`` every
    ``lr_step`` epochs. ``cosine`` (the paper's ImageNet schedule): linear warm-up
    ``(epoch + 1) / warmup`` then ``(1 + cos(pi * t / (epochs - warmup))) / 2`` with ``t`` the
    epochs since warm-up."""
    if config.schedule == "step":
        return config.lr_gamma ** (epoch // config.lr_step)
    if epoch < config.warmup_epochs:
        return (epoch + 1) / config.warmup_epochs
    return 0.5 * (1 + math.cos(math.pi * (epoch - config.warmup_epochs) / (config.epochs - config.warmup_epochs)))


def attack_radius(config: TrainConfig, epoch: int) -> float:
    """The l2 radius of the training attack in epoch ``epoch`` (from 0): ``eps``, or with
    ``eps_warmup = W`` epochs, ``eps * min(1, (epoch + 1) / W)``, the linear ramp of SmoothAdv's
    training script (Salman et al.'s ``--warmup``; their CIFAR-10 runs use 10 epochs)."""
    return config.eps * _ramp(epoch, config.eps_warmup)


def regularizer_weight(config: TrainConfig, epoch: int) -> float:
    """The lambda of epoch ``epoch`` (from 0): 0 in the first ``lam_delay`` epochs, then ``lam``
    (MACER's deferred mode in later reimplementations, with ``lam_delay`` the first drop's epoch)."""
    return 0.0 if epoch < config.lam_delay else config.lam


def mixup_weight(config: TrainConfig, epoch: int) -> float:
    """SmoothMix's weight ``w`` of the mixup term in epoch ``epoch`` (from 0):
    ``min(1, (epoch + 1) / mix_warmup)``, or 1 without warm-up."""
    return _ramp(epoch, config.mix_warmup)


def _ramp(epoch: int, warmup: int) -> float:
    """``min(1, (epoch + 1) / warmup)``, the linear warm-up of the field's scripts; 1 when ``warmup`` is 0."""
    return min(1.0, (epoch + 1) / warmup) if warmup else 1.0
