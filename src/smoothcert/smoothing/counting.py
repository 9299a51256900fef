"""Counting the base classifier's predictions on noisy copies of inputs: the Monte Carlo part of
the smoothed classifier ``g(x) = argmax_c P(f(x + delta) = c)``, ``delta ~ N(0, sigma^2 I)``
(eq. 1 of the spec)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from numpy.typing import NDArray

from smoothcert.runtime.allocator import keep_heap_memory
from smoothcert.validators import POSITIVE_INT

NOISE_BLOCK = 100
"""Noise is drawn in blocks of this many samples, so that certificates do not depend on the
batch size or on how inputs are packed into batches."""


def count_phases(model: torch.nn.Module, num_classes: int, sigma: float, inputs: torch.Tensor, phases: Sequence[int],
                 batch_size: int, generators: Sequence[torch.Generator | None]) -> NDArray[np.int64]:
    """``counts[i, p, c]``: how often ``model`` says ``c`` on the ``phases[p]`` noisy copies
    ``inputs[i] + sigma * N(0, I)`` of phase ``p`` (e.g. ``(n0, n)``).

    The noise of input ``i`` is drawn from ``generators[i]`` in blocks of :data:`NOISE_BLOCK`
    samples (the last block of a phase may be shorter), phase after phase. Whole blocks of several
    inputs are packed into forward passes of up to ``batch_size`` copies (rounded down to a
    multiple of the block, when at least one block), so small phases (``n0 = 100``) still fill
    the device; the counts of an input do not depend on ``batch_size`` nor on which inputs share
    its batches. ``inputs`` must be on the model's device. Predictions are counted on the device;
    the counts are copied to the host once, at the end. The model runs in eval mode; its mode is
    restored afterwards.
    """
    batch_size = int(POSITIVE_INT.check("batch_size", batch_size))
    for num in phases:
        POSITIVE_INT.check("number of samples", num)
    if len(generators) != len(inputs):
        raise ValueError(f"need one generator per input, got {len(generators)} for {len(inputs)} inputs")
    device, shape = inputs.device, inputs.shape[1:]
    if device.type == "cpu":
        keep_heap_memory()  # no page-fault tax on large batches (smoothcert.runtime.allocator)
    blocks = [(i, p, min(NOISE_BLOCK, num - start))
              for i in range(len(inputs)) for p, num in enumerate(phases) for start in range(0, num, NOISE_BLOCK)]
    capacity = max(NOISE_BLOCK, batch_size - batch_size % NOISE_BLOCK)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            counts = torch.zeros((len(inputs), len(phases), num_classes), dtype=torch.long, device=device)
            buffer = torch.empty((min(capacity, sum(b[2] for b in blocks)), *shape), dtype=inputs.dtype, device=device)
            ones = torch.ones(NOISE_BLOCK, dtype=torch.long, device=device)
            start = 0
            while start < len(blocks):
                filled, stop = 0, start
                while stop < len(blocks) and filled + blocks[stop][2] <= capacity:
                    i, _, size = blocks[stop]
                    block = buffer[filled:filled + size]
                    torch.randn(block.shape, generator=generators[i], out=block)
                    block.mul_(sigma).add_(inputs[i])
                    filled, stop = filled + size, stop + 1
                batch = buffer[:filled]
                predictions = _predict(model, num_classes, batch) if filled <= batch_size else torch.cat(
                    [_predict(model, num_classes, batch[a:a + batch_size]) for a in range(0, filled, batch_size)])
                offset = 0
                for i, p, size in blocks[start:stop]:
                    counts[i, p].index_add_(0, predictions[offset:offset + size], ones[:size])
                    offset += size
                start = stop
            return counts.cpu().numpy()
    finally:
        model.train(was_training)


def _predict(model: torch.nn.Module, num_classes: int, batch: torch.Tensor) -> torch.Tensor:
    """The top class of each row of ``batch``, refusing logits of the wrong shape."""
    logits = model(batch)
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise ValueError(
            f"the base classifier returned logits of shape {tuple(logits.shape)} for a batch of {len(batch)}; "
            f"expected ({len(batch)}, {num_classes}) since num_classes = {num_classes}"
        )
    return logits.argmax(dim=1)
