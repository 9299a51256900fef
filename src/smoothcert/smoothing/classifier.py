"""The smoothed classifier ``g(x) = argmax_c P(f(x + delta) = c)``, ``delta ~ N(0, sigma^2 I)``
(eq. 1 of the spec), evaluated by Monte Carlo around any torch classifier ``f``.

This is the model side: it draws noise and counts predictions, and hands the counts to
:mod:`smoothcert.statistics.certificates`, which computes every bound.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from numpy.typing import NDArray

from smoothcert.smoothing.certification import CertifySettings, certify_batch
from smoothcert.smoothing.counting import count_phases
from smoothcert.statistics.certificates import (PAPER_GRID, Abstention, Certificate, PbBound, Prediction, Selection,
                                                predict_from_counts)
from smoothcert.statistics.sequential import EarlyStop
from smoothcert.rules import AT_LEAST_TWO, POSITIVE


class SmoothedClassifier:
    """Gaussian smoothing of ``base_classifier``, a module mapping a batch of inputs to logits
    over ``num_classes`` classes, at noise level ``sigma`` (in the input's units).

    Every method takes one input ``x`` without a batch dimension. Noise is drawn on the model's
    device into a buffer of at most ``batch_size`` copies (memory is set by ``batch_size``, never
    by the number of samples); predictions are counted on the device and copied to the host once
    per call. On a CPU the allocator is set to keep freed buffers (:mod:`smoothcert.runtime.allocator`), so
    that large batches do not page-fault their buffers back in at every pass; on a GPU, batches as
    large as memory allows run fastest.
    Pass ``seed`` (or a ``torch.Generator`` on the model's device) for reproducible certificates.
    The model is put in eval mode for the call and its mode restored afterwards.

    Inputs must be finite. With ``input_shape`` (e.g. ``(3, 32, 32)``) and ``input_range`` (e.g.
    ``(0.0, 1.0)``, pixel space, where the radius is meant), inputs of another shape or with
    values outside the range (say, images already standardized) are refused before any sampling;
    :func:`smoothcert.smoothing.checkpoint.load_smoothed` sets both from the checkpoint's dataset.
    """

    def __init__(self, base_classifier: torch.nn.Module, num_classes: int, sigma: float,
                 input_shape: Sequence[int] | None = None, input_range: tuple[float, float] | None = None) -> None:
        if not isinstance(base_classifier, torch.nn.Module):
            raise TypeError(f"base_classifier must be a torch.nn.Module, got {type(base_classifier).__name__}")
        self.base_classifier = base_classifier
        self.num_classes = int(AT_LEAST_TWO.check("num_classes", num_classes))
        self.sigma = float(POSITIVE.check("sigma", sigma))
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
        if x.numel() == 0:
            raise ValueError(f"x is empty (shape {tuple(x.shape)}); expected one input, e.g. a (1, 28, 28) image")
        weights = next(iter(self.base_classifier.parameters()), None)
        if weights is not None and weights.is_floating_point() and x.dtype != weights.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the classifier's weights are {weights.dtype}; pass x.to({weights.dtype})")
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
        the ``phases[p]`` noisy copies of ``inputs[i]`` of phase ``p`` (e.g. ``(n0, n)``), after
        the inputs are checked; see :func:`smoothcert.smoothing.counting.count_phases`.
        ``inputs`` must be on the model's device."""
        self._check_inputs(inputs)
        return count_phases(self.base_classifier, self.num_classes, self.sigma, inputs, phases, batch_size, generators)

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
        :func:`~smoothcert.statistics.certificates.certify_from_counts`)."""
        settings = CertifySettings(n0=n0, n=n, alpha=alpha, batch_size=batch_size, method="certify")
        return self._certify_one(x, seed, generator, settings)["certify"][0]

    def t_certify(
        self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int = 1000, *,
        grid: Sequence[float] = PAPER_GRID, selection: Selection = "corrected", abstain: Abstention = "half",
        pb_bound: PbBound = "max", seed: int | None = None, generator: torch.Generator | None = None,
    ) -> Certificate:
        """T-CERTIFY, Algorithm 2 of the spec (see
        :func:`~smoothcert.statistics.certificates.t_certify_from_counts` for ``grid``,
        ``selection``, ``abstain`` and ``pb_bound``)."""
        settings = CertifySettings(n0=n0, n=n, alpha=alpha, batch_size=batch_size, method="tcertify", grid=grid, selection=selection,
                                   abstain=abstain, pb_bound=pb_bound)
        return self._certify_one(x, seed, generator, settings)["tcertify"][0]

    def certify_until(
        self, x: torch.Tensor, n0: int, n: int, alpha: float, target_radius: float, batch_size: int = 1000, *,
        early_stop: EarlyStop = "sequence", stages: int = 5, seed: int | None = None, generator: torch.Generator | None = None,
    ) -> tuple[Certificate, int]:
        """CERTIFY that stops sampling once the outcome at ``target_radius`` is decided (see
        :func:`~smoothcert.smoothing.certification.certify_until_decided`): the certificate,
        valid at level ``alpha`` whenever it stopped, and the estimation samples it used (at most
        ``n``, a prefix of those :meth:`certify` draws with the same generator)."""
        settings = CertifySettings(n0=n0, n=n, alpha=alpha, batch_size=batch_size, method="certify", target_radius=target_radius,
                                   early_stop=early_stop, stages=stages)
        return self._certify_one(x, seed, generator, settings)["certify"]

    def certify_grid(
        self, x: torch.Tensor, n0: int, n: int, alpha: float, radii: Sequence[float] | str = "auto", batch_size: int = 1000, *,
        seed: int | None = None, generator: torch.Generator | None = None,
    ) -> tuple[Certificate, int]:
        """CERTIFY on a grid of radii (``"auto"``: 0.25, 0.5, ... up to what ``n`` can certify):
        sampling stops once the input's largest certified grid radius is decided (see
        :func:`~smoothcert.smoothing.certification.certify_on_grid` and
        :mod:`smoothcert.statistics.grid`). Returns the certificate, valid at level ``alpha``
        whenever it stopped, and the estimation samples used (at most ``n``)."""
        spelling = radii if isinstance(radii, str) else ",".join(repr(float(r)) for r in radii)
        settings = CertifySettings(n0=n0, n=n, alpha=alpha, batch_size=batch_size, method="certify", radii=spelling)
        return self._certify_one(x, seed, generator, settings)["certify"]

    def _certify_one(self, x: torch.Tensor, seed: int | None, generator: torch.Generator | None,
                     settings: CertifySettings) -> dict[str, tuple[Certificate, int]]:
        x, generator = self._prepare(x, seed, generator)
        return certify_batch(self, x.unsqueeze(0), [generator], settings)[0]
