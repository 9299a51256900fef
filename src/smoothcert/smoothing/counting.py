"""Counting the base classifier's predictions on noisy copies of inputs: the Monte Carlo part of
the smoothed classifier ``g(x) = argmax_c P(f(x + delta) = c)``, ``delta ~ N(0, sigma^2 I)``
(eq. 1 of the spec)."""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np
import torch
from numpy.typing import NDArray

from smoothcert.runtime.allocator import keep_heap_memory

NOISE_BLOCK = 100
"""Noise is drawn in blocks of this many samples, so that certificates do not depend on the
batch size or on how inputs are packed into batches."""


class NonFiniteLogits(ValueError):
    """The base classifier returned NaN or infinite logits: argmax would pick a class anyway
    (class 0 for NaN), so the counts, and any certificate from them, would be meaningless."""

    def __init__(self, positions: list[int]) -> None:
        self.positions = positions
        super().__init__(f"the base classifier returned non-finite logits (NaN or inf) on noisy copies of input(s) "
                         f"{positions[:5]} of the batch; nothing is certified from them: check the model's weights and inputs")


def _blocks(inputs: int, phases: Sequence[int]) -> Iterator[tuple[int, int, int]]:
    """``(input, phase, size)`` of every noise block, input after input and phase after phase,
    made one at a time (memory does not grow with the number of samples)."""
    for i in range(inputs):
        for p, num in enumerate(phases):
            for start in range(0, num, NOISE_BLOCK):
                yield i, p, min(NOISE_BLOCK, num - start)


def count_phases(model: torch.nn.Module, num_classes: int, sigma: float, inputs: torch.Tensor, phases: Sequence[int],
                 batch_size: int, generators: Sequence[torch.Generator | None]) -> NDArray[np.int64]:
    """``counts[i, p, c]``: how often ``model`` says ``c`` on the ``phases[p]`` noisy copies
    ``inputs[i] + sigma * N(0, I)`` of phase ``p`` (e.g. ``(n0, n)``).

    The noise of input ``i`` is drawn from ``generators[i]`` in blocks of :data:`NOISE_BLOCK`
    samples (the last block of a phase may be shorter), phase after phase. Whole blocks of several
    inputs are packed into forward passes of up to ``batch_size`` copies (rounded down to a
    multiple of the block, when at least one block), so small phases (``n0 = 100``) still fill
    the device; the counts of an input do not depend on ``batch_size`` nor on which inputs share
    its batches. The blocks are planned one pass at a time, so memory is set by the batch, not by
    the number of samples. ``inputs`` must be on the model's device. Predictions are counted on
    the device, a copy whose logits are not all finite in an extra bin; the counts are copied to
    the host once, at the end, and :class:`NonFiniteLogits` is raised if that bin is not empty.
    The model runs in eval mode; its mode is restored afterwards. ``batch_size`` and ``phases``
    are positive integers, checked where the settings entered.
    """
    if len(generators) != len(inputs):
        raise ValueError(f"need one generator per input, got {len(generators)} for {len(inputs)} inputs")
    device = inputs.device
    if device.type == "cpu":
        keep_heap_memory()  # no page-fault tax on large batches (smoothcert.runtime.allocator)
    capacity = _capacity(batch_size)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            counts = torch.zeros((len(inputs), len(phases), num_classes + 1), dtype=torch.long, device=device)
            buffer = _noise_buffer(pass_size(batch_size, len(inputs), phases), inputs)
            ones = torch.ones(NOISE_BLOCK, dtype=torch.long, device=device)
            blocks = _blocks(len(inputs), phases)
            pending = next(blocks, None)
            while pending is not None:
                filled, packed = 0, []
                while pending is not None and filled + pending[2] <= capacity:
                    i, _, size = pending
                    block = buffer[filled:filled + size]
                    torch.randn(block.shape, generator=generators[i], out=block)
                    block.mul_(sigma).add_(inputs[i])
                    packed.append(pending)
                    filled, pending = filled + size, next(blocks, None)
                batch = buffer[:filled]
                predictions = _predict(model, num_classes, batch) if filled <= batch_size else torch.cat(
                    [_predict(model, num_classes, batch[a:a + batch_size]) for a in range(0, filled, batch_size)])
                offset = 0
                for i, p, size in packed:
                    counts[i, p].index_add_(0, predictions[offset:offset + size], ones[:size])
                    offset += size
            counts = counts.cpu().numpy()
    finally:
        model.train(was_training)
    broken = np.flatnonzero(counts[:, :, num_classes].sum(axis=1))
    if len(broken):
        raise NonFiniteLogits(broken.tolist())
    return counts[:, :, :num_classes]


def _available_bytes(device: torch.device) -> int:
    """The memory a buffer may take on ``device``: the free memory of a GPU, the physical memory of the host."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _capacity(batch_size: int) -> int:
    """Copies per packed pass: ``batch_size`` rounded down to whole blocks, at least one block."""
    return max(NOISE_BLOCK, batch_size - batch_size % NOISE_BLOCK)


def pass_size(batch_size: int, inputs: int, phases: Sequence[int]) -> int:
    """How many noisy copies one packed pass of :func:`count_phases` holds at most."""
    return min(_capacity(batch_size), inputs * sum(phases))


def refuse_oversized_pass(copies: int, example: torch.Tensor) -> None:
    """Refuse, in one line, a pass of ``copies`` noisy copies of inputs like ``example`` (one input)
    that cannot fit in its device's memory (a batch size far too large would otherwise end in the
    allocator)."""
    needed = copies * example.numel() * example.element_size()
    available = _available_bytes(example.device)
    if needed > available:
        raise ValueError(f"a forward pass of {copies} noisy copies needs {needed / 2**30:.1f} GiB for the copies alone, more than the "
                         f"{available / 2**30:.1f} GiB of {example.device.type} memory: lower --batch (batch_size)")


def _noise_buffer(copies: int, inputs: torch.Tensor) -> torch.Tensor:
    """Room for ``copies`` noisy copies of an input (:func:`refuse_oversized_pass`)."""
    refuse_oversized_pass(copies, inputs[0])
    return torch.empty((copies, *inputs.shape[1:]), dtype=inputs.dtype, device=inputs.device)


def _predict(model: torch.nn.Module, num_classes: int, batch: torch.Tensor) -> torch.Tensor:
    """The top class of each row of ``batch``, or ``num_classes`` where its logits are not all
    finite; refuses logits of the wrong shape."""
    logits = model(batch)
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise ValueError(
            f"the base classifier returned logits of shape {tuple(logits.shape)} for a batch of {len(batch)}; "
            f"expected ({len(batch)}, {num_classes}) since num_classes = {num_classes}"
        )
    return torch.where(torch.isfinite(logits).all(dim=1), logits.argmax(dim=1), num_classes)
