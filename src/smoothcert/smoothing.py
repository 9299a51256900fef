"""The smoothed classifier ``g(x) = argmax_c P(f(x + delta) = c)``, ``delta ~ N(0, sigma^2 I)``
(eq. 1 of the spec), evaluated by Monte Carlo around any torch classifier ``f``.

This is the model side: it draws noise and counts predictions, and hands the counts to
:mod:`smoothcert.certify`, which computes every bound.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from numpy.typing import NDArray

from smoothcert.certify import (
    PAPER_GRID,
    Abstention,
    Certificate,
    Prediction,
    Selection,
    certify_from_counts,
    predict_from_counts,
    t_certify_from_counts,
)


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class SmoothedClassifier:
    """Gaussian smoothing of ``base_classifier``, a module mapping a batch of inputs to logits
    over ``num_classes`` classes, at noise level ``sigma`` (in the input's units).

    Every method takes one input ``x`` without a batch dimension. Noise is drawn on the model's
    device, ``batch_size`` copies at a time, so memory is set by ``batch_size`` and never by the
    number of samples; predictions are counted on the device and copied to the host once per call.
    Pass ``seed`` (or a ``torch.Generator`` on the model's device) for reproducible certificates.
    The model is put in eval mode for the call and its mode restored afterwards.
    """

    def __init__(self, base_classifier: torch.nn.Module, num_classes: int, sigma: float) -> None:
        if not isinstance(base_classifier, torch.nn.Module):
            raise TypeError(f"base_classifier must be a torch.nn.Module, got {type(base_classifier).__name__}")
        self.base_classifier = base_classifier
        self.num_classes = _check_positive_int(num_classes, "num_classes")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if not (isinstance(sigma, (int, float)) and np.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {sigma!r}")
        self.sigma = float(sigma)

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
        device = self.device if self.device is not None else x.device
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
        return self._count(x, num, batch_size, generator)

    def _count(self, x: torch.Tensor, num: int, batch_size: int, generator: torch.Generator | None) -> NDArray[np.int64]:
        """:meth:`sample_counts` for an ``x`` already on the model's device."""
        num = _check_positive_int(num, "number of samples")
        batch_size = _check_positive_int(batch_size, "batch_size")
        model = self.base_classifier
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                counts = torch.zeros(self.num_classes, dtype=torch.long, device=x.device)
                ones = torch.ones(min(batch_size, num), dtype=torch.long, device=x.device)
                remaining = num
                while remaining > 0:
                    size = min(batch_size, remaining)
                    batch = torch.randn((size, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
                    batch.mul_(self.sigma).add_(x)
                    logits = model(batch)
                    if logits.ndim != 2 or logits.shape[1] != self.num_classes:
                        raise ValueError(
                            f"the base classifier returned logits of shape {tuple(logits.shape)} for a batch of {size}; "
                            f"expected ({size}, {self.num_classes}) since num_classes = {self.num_classes}"
                        )
                    counts.index_add_(0, logits.argmax(dim=1), ones[:size])
                    remaining -= size
                return counts.cpu().numpy()
        finally:
            model.train(was_training)

    def predict(
        self, x: torch.Tensor, n: int, alpha: float, batch_size: int = 1000, *,
        seed: int | None = None, generator: torch.Generator | None = None,
    ) -> Prediction:
        """Cohen et al.'s PREDICT on ``n`` noisy samples (see :func:`predict_from_counts`)."""
        x, generator = self._prepare(x, seed, generator)
        return predict_from_counts(self._count(x, n, batch_size, generator), alpha)

    def certify(
        self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int = 1000, *,
        seed: int | None = None, generator: torch.Generator | None = None,
    ) -> Certificate:
        """Cohen et al.'s CERTIFY: select on ``n0`` samples, bound on ``n`` fresh ones (see
        :func:`certify_from_counts`)."""
        x, generator = self._prepare(x, seed, generator)
        counts0 = self._count(x, n0, batch_size, generator)
        counts = self._count(x, n, batch_size, generator)
        return certify_from_counts(counts0, counts, alpha, self.sigma)

    def t_certify(
        self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int = 1000, *,
        grid: Sequence[float] = PAPER_GRID, selection: Selection = "corrected", abstain: Abstention = "half",
        seed: int | None = None, generator: torch.Generator | None = None,
    ) -> Certificate:
        """T-CERTIFY, Algorithm 2 of the spec (see :func:`t_certify_from_counts` for ``grid``,
        ``selection`` and ``abstain``)."""
        x, generator = self._prepare(x, seed, generator)
        counts0 = self._count(x, n0, batch_size, generator)
        counts = self._count(x, n, batch_size, generator)
        return t_certify_from_counts(counts0, counts, alpha, self.sigma, grid=grid, selection=selection, abstain=abstain)
