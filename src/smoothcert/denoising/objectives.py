"""The denoiser's objectives (Salman et al. 2020, Sec. 3; ``code/train_denoiser.py`` of
microsoft/denoised-smoothing, the loss of its ``train`` function, about lines 247-261 at commit
6082675), on clean images ``x`` in [0, 1] and their noisy
copies ``x + delta``:

- MSE: ``mean over pixels of (D(x + delta) - x)^2`` (their ``MSELoss``, reduction mean);
- stability: ``mean_i CE(f(D(x_i + delta_i)), argmax f(x_i))``, the frozen classifier's
  cross-entropy on the denoised noisy image against its own prediction on the clean image (the
  target computed without gradient, as their ``torch.no_grad()`` block does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mse_objective(denoised: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """The mean squared error of the denoised images against the clean ones."""
    return F.mse_loss(denoised, clean)


def stability_objective(classifier: torch.nn.Module, denoised: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """The classifier's cross-entropy on the denoised images against its prediction on the clean
    ones (no gradient through the prediction)."""
    with torch.no_grad():
        target = classifier(clean).argmax(dim=1)
    return F.cross_entropy(classifier(denoised), target)
