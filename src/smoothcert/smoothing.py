"""The smoothed classifier ``g(x) = argmax_c P(f(x + delta) = c)``, ``delta ~ N(0, sigma^2 I)``
(eq. 1 of the spec), evaluated by Monte Carlo around any torch classifier ``f``.

This is the model side: it draws noise and counts predictions, and hands the counts to
:mod:`smoothcert.certify`, which computes every bound.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from numpy.typing import NDArray

from smoothcert.allocator import keep_heap_memory
from smoothcert.certify import (
    PAPER_GRID,
    Abstention,
    Certificate,
    PbBound,
    Prediction,
    Selection,
    certify_from_counts,
    predict_from_counts,
    t_certify_from_counts,
)
from smoothcert.sequential import EARLY_STOPS, EarlyStop, SequenceTest, checkpoint_decision, checkpoint_plan, sequence_decision


NOISE_BLOCK = 100
"""Noise is drawn in blocks of this many samples, so that certificates do not depend on the
batch size or on how inputs are packed into batches."""


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class SmoothedClassifier:
    """Gaussian smoothing of ``base_classifier``, a module mapping a batch of inputs to logits
    over ``num_classes`` classes, at noise level ``sigma`` (in the input's units).

    Every method takes one input ``x`` without a batch dimension. Noise is drawn on the model's
    device into a buffer of at most ``batch_size`` copies (memory is set by ``batch_size``, never
    by the number of samples); predictions are counted on the device and copied to the host once
    per call. On a CPU the allocator is set to keep freed buffers (:mod:`smoothcert.allocator`), so
    that large batches do not page-fault their buffers back in at every pass; on a GPU, batches as
    large as memory allows run fastest.
    Pass ``seed`` (or a ``torch.Generator`` on the model's device) for reproducible certificates.
    The model is put in eval mode for the call and its mode restored afterwards.

    Inputs must be finite. With ``input_shape`` (e.g. ``(3, 32, 32)``) and ``input_range`` (e.g.
    ``(0.0, 1.0)``, pixel space, where the radius is meant), inputs of another shape or with
    values outside the range (say, images already standardized) are refused before any sampling;
    :func:`smoothcert.checkpoint.load_smoothed` sets both from the checkpoint's dataset.
    """

    def __init__(self, base_classifier: torch.nn.Module, num_classes: int, sigma: float,
                 input_shape: Sequence[int] | None = None, input_range: tuple[float, float] | None = None) -> None:
        if not isinstance(base_classifier, torch.nn.Module):
            raise TypeError(f"base_classifier must be a torch.nn.Module, got {type(base_classifier).__name__}")
        self.base_classifier = base_classifier
        self.num_classes = _check_positive_int(num_classes, "num_classes")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if not (isinstance(sigma, (int, float)) and np.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {sigma!r}")
        self.sigma = float(sigma)
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        if input_range is not None and not (len(input_range) == 2 and input_range[0] < input_range[1]):
            raise ValueError(f"input_range must be (low, high) with low < high, got {input_range!r}")
        self.input_range = input_range

    @property
    def device(self) -> torch.device | None:
        """The device of the model's first parameter or buffer (None for a stateless model)."""
        for tensor in self.base_classifier.parameters():
            return tensor.device
        for tensor in self.base_classifier.buffers():
            return tensor.device
        return None

    def _prepare(self, x: torch.Tensor, seed: int | None, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Generator | None]:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point torch.Tensor holding one input (no batch dimension), got {type(x).__name__}")
        model_device = self.device
        device = model_device if model_device is not None else x.device
        x = x.to(device)
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        if seed is not None:
            generator = torch.Generator(device=device).manual_seed(int(seed))
        elif generator is not None and generator.device.type != device.type:
            raise ValueError(f"generator is on {generator.device} but the model runs on {device}; create it with torch.Generator(device={str(device)!r})")
        return x, generator

    def sample_counts(
        self, x: torch.Tensor, num: int, batch_size: int = 1000, *,
        seed: int | None = None, generator: torch.Generator | None = None,
    ) -> NDArray[np.int64]:
        """Counts of ``f(x + delta_i)`` over ``num`` draws ``delta_i ~ N(0, sigma^2 I)``: an array
        of length ``num_classes``."""
        x, generator = self._prepare(x, seed, generator)
        return self.count_phases(x.unsqueeze(0), (num,), batch_size, [generator])[0, 0]

    def count_phases(
        self, inputs: torch.Tensor, phases: Sequence[int], batch_size: int, generators: Sequence[torch.Generator | None],
    ) -> NDArray[np.int64]:
        """Counts for several inputs at once: ``counts[i, p, c]`` is how often ``f`` says ``c`` on
        the ``phases[p]`` noisy copies of ``inputs[i]`` of phase ``p`` (e.g. ``(n0, n)``).

        The noise of input ``i`` is drawn from ``generators[i]`` in blocks of
        :data:`NOISE_BLOCK` samples (the last block of a phase may be shorter), phase after
        phase. Whole blocks of several inputs are packed into forward passes of up to
        ``batch_size`` copies (rounded down to a multiple of the block, when at least one block),
        so small phases (``n0 = 100``) still fill the device; the counts of an input do not
        depend on ``batch_size`` nor on which inputs share its batches. ``inputs`` must be on the
        model's device. Predictions are counted on the device; the counts are copied to the host
        once, at the end.
        """
        batch_size = _check_positive_int(batch_size, "batch_size")
        for num in phases:
            _check_positive_int(num, "number of samples")
        self._check_inputs(inputs)
        if len(generators) != len(inputs):
            raise ValueError(f"need one generator per input, got {len(generators)} for {len(inputs)} inputs")
        device, shape = inputs.device, inputs.shape[1:]
        if device.type == "cpu":
            keep_heap_memory()  # no page-fault tax on large batches (smoothcert.allocator)
        blocks = [(i, p, min(NOISE_BLOCK, num - start))
                  for i in range(len(inputs)) for p, num in enumerate(phases) for start in range(0, num, NOISE_BLOCK)]
        capacity = max(NOISE_BLOCK, batch_size - batch_size % NOISE_BLOCK)
        model = self.base_classifier
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                counts = torch.zeros((len(inputs), len(phases), self.num_classes), dtype=torch.long, device=device)
                buffer = torch.empty((min(capacity, sum(b[2] for b in blocks)), *shape), dtype=inputs.dtype, device=device)
                ones = torch.ones(NOISE_BLOCK, dtype=torch.long, device=device)
                start = 0
                while start < len(blocks):
                    filled, stop = 0, start
                    while stop < len(blocks) and filled + blocks[stop][2] <= capacity:
                        i, _, size = blocks[stop]
                        block = buffer[filled:filled + size]
                        torch.randn(block.shape, generator=generators[i], out=block)
                        block.mul_(self.sigma).add_(inputs[i])
                        filled, stop = filled + size, stop + 1
                    batch = buffer[:filled]
                    predictions = self._predict(batch) if filled <= batch_size else torch.cat(
                        [self._predict(batch[a:a + batch_size]) for a in range(0, filled, batch_size)])
                    offset = 0
                    for i, p, size in blocks[start:stop]:
                        counts[i, p].index_add_(0, predictions[offset:offset + size], ones[:size])
                        offset += size
                    start = stop
                return counts.cpu().numpy()
        finally:
            model.train(was_training)

    def _check_inputs(self, inputs: torch.Tensor) -> None:
        """Refuse a batch of inputs of another shape than ``input_shape``, with values outside
        ``input_range``, or not finite (one host synchronization)."""
        if self.input_shape is not None and tuple(inputs.shape[1:]) != self.input_shape:
            raise ValueError(f"an input has shape {tuple(inputs.shape[1:])}; this classifier takes inputs of shape {self.input_shape} "
                             "(one input without a batch dimension)")
        low, high = self.input_range if self.input_range is not None else (-math.inf, math.inf)
        smallest, largest = torch.stack(torch.aminmax(inputs)).tolist()  # NaN propagates into both
        if not (math.isfinite(smallest) and math.isfinite(largest)):
            raise ValueError("an input holds NaN or infinite values; inputs must be finite")
        if smallest < low or largest > high:
            raise ValueError(f"input values span [{smallest:.4g}, {largest:.4g}], outside the expected range [{low:g}, {high:g}] "
                             "(pixels in [0, 1], before the model's own normalization)")

    def _predict(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self.base_classifier(batch)
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"the base classifier returned logits of shape {tuple(logits.shape)} for a batch of {len(batch)}; "
                f"expected ({len(batch)}, {self.num_classes}) since num_classes = {self.num_classes}"
            )
        return logits.argmax(dim=1)

    def predict(
        self, x: torch.Tensor, n: int, alpha: float, batch_size: int = 1000, *,
        seed: int | None = None, generator: torch.Generator | None = None,
    ) -> Prediction:
        """Cohen et al.'s PREDICT on ``n`` noisy samples (see :func:`predict_from_counts`)."""
        x, generator = self._prepare(x, seed, generator)
        return predict_from_counts(self.count_phases(x.unsqueeze(0), (n,), batch_size, [generator])[0, 0], alpha)

    def certify(
        self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int = 1000, *,
        seed: int | None = None, generator: torch.Generator | None = None,
    ) -> Certificate:
        """Cohen et al.'s CERTIFY: select on ``n0`` samples, bound on ``n`` fresh ones (see
        :func:`certify_from_counts`)."""
        x, generator = self._prepare(x, seed, generator)
        counts0, counts = self.count_phases(x.unsqueeze(0), (n0, n), batch_size, [generator])[0]
        return certify_from_counts(counts0, counts, alpha, self.sigma)

    def t_certify(
        self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int = 1000, *,
        grid: Sequence[float] = PAPER_GRID, selection: Selection = "corrected", abstain: Abstention = "half",
        pb_bound: PbBound = "max", seed: int | None = None, generator: torch.Generator | None = None,
    ) -> Certificate:
        """T-CERTIFY, Algorithm 2 of the spec (see :func:`t_certify_from_counts` for ``grid``,
        ``selection``, ``abstain`` and ``pb_bound``)."""
        x, generator = self._prepare(x, seed, generator)
        counts0, counts = self.count_phases(x.unsqueeze(0), (n0, n), batch_size, [generator])[0]
        return t_certify_from_counts(counts0, counts, alpha, self.sigma, grid=grid, selection=selection, abstain=abstain,
                                     pb_bound=pb_bound)

    def certify_until(
        self, x: torch.Tensor, n0: int, n: int, alpha: float, target_radius: float, batch_size: int = 1000, *,
        early_stop: EarlyStop = "sequence", stages: int = 5, seed: int | None = None, generator: torch.Generator | None = None,
    ) -> tuple[Certificate, int]:
        """CERTIFY that stops sampling once the outcome at ``target_radius`` is decided, by the rule
        ``early_stop`` of :mod:`smoothcert.sequential` (``"sequence"``: a look after every block of
        :data:`NOISE_BLOCK` samples; ``"checkpoints"``: ``stages`` fixed looks). Returns the
        certificate, valid at level ``alpha`` whenever it stopped, and the number of estimation
        samples it used (at most ``n``). Its samples are a prefix of those :meth:`certify` draws
        with the same generator. Blocks are evaluated a few at a time (1, 2, 4, ... blocks per
        forward pass, up to ``batch_size``) and decided after each block."""
        if early_stop not in EARLY_STOPS:
            raise ValueError(f"early_stop must be one of {', '.join(EARLY_STOPS)}, got {early_stop!r}")
        x, generator = self._prepare(x, seed, generator)
        inputs = x.unsqueeze(0)
        top = int(np.argmax(self.count_phases(inputs, (n0,), batch_size, [generator])[0, 0]))
        if early_stop == "checkpoints":
            plan = checkpoint_plan(n, alpha, stages, block=NOISE_BLOCK)
            looks = plan.checkpoints
            decide = lambda look, count, used: checkpoint_decision(plan, look, top, count, self.sigma, target_radius, alpha)
            most_per_call = 1
        else:
            test = SequenceTest(n, alpha)
            looks = tuple(range(NOISE_BLOCK, n, NOISE_BLOCK)) + (n,)
            decide = lambda look, count, used: sequence_decision(test, top, count, used, self.sigma, target_radius)
            most_per_call = max(1, batch_size // NOISE_BLOCK)
        top_count, used, look, per_call = 0, 0, 0, 1
        while True:
            chunk = looks[look:look + per_call]
            phases = np.diff((used, *chunk))
            counts = self.count_phases(inputs, tuple(int(p) for p in phases), batch_size, [generator])[0, :, top]
            for count, checkpoint in zip(counts, chunk):
                top_count, used = top_count + int(count), checkpoint
                decided = decide(look, top_count, used)
                if decided is not None:
                    return decided, used
                look += 1
            per_call = min(2 * per_call, most_per_call)
