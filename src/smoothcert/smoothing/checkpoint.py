"""The smoothed classifier of a checkpoint file (ours, or one released by Cohen et al. or Salman et al.)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from smoothcert.data import dataset_info
from smoothcert.models.checkpoint import load_classifier
from smoothcert.smoothing.classifier import SmoothedClassifier


def load_smoothed(
    path: str | Path, device: str | torch.device = "cpu", sigma: float | None = None, dataset: str | None = None,
) -> tuple[SmoothedClassifier, dict[str, Any]]:
    """The smoothed classifier of a checkpoint (see :func:`load_classifier` for ``sigma`` and
    ``dataset``), refusing inputs that are not of its dataset's shape or not pixels in [0, 1]."""
    model, entries = load_classifier(path, device, sigma=sigma, dataset=dataset)
    info = dataset_info(entries["dataset"])
    return SmoothedClassifier(model, entries["num_classes"], entries["sigma"], input_shape=info.input_shape, input_range=(0.0, 1.0)), entries
