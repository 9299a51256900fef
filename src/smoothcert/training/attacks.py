"""What the methods' attacks share: the per-example l2 norm, and a model whose parameters take no
gradient while an attack differentiates it. Each attack lives with its method
(:mod:`smoothcert.training.methods`)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


def per_example_norm(t: torch.Tensor) -> torch.Tensor:
    """The l2 norm of each example of ``t`` ``(B, ...)``, shaped to broadcast against it."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


@contextmanager
def frozen(model: torch.nn.Module) -> Iterator[None]:
    """The model's parameters take no gradient inside the block; their flags are restored after."""
    requires_grad = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), requires_grad):
            p.requires_grad_(flag)


@contextmanager
def in_eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode inside the block, train mode after (the field's scripts attack in eval mode)."""
    model.eval()
    try:
        yield
    finally:
        model.train()
