"""The smoothed classifier of a checkpoint file (ours, or one released by Cohen et al. or Salman
et al.), and with it the data split it is evaluated on and the provenance every results file
records (:func:`open_checkpoint`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from smoothcert.data import dataset_info, load_dataset
from smoothcert.models.checkpoint import file_digest, load_classifier
from smoothcert.models.denoised import DenoisedClassifier, check_denoiser_fits
from smoothcert.models.diffusion import load_diffusion_denoiser
from smoothcert.runtime.seeding import noise_fingerprint
from smoothcert.smoothing.classifier import SmoothedClassifier


def load_smoothed(
    path: str | Path, device: str | torch.device = "cpu", sigma: float | None = None, dataset: str | None = None,
) -> tuple[SmoothedClassifier, dict[str, Any]]:
    """The smoothed classifier of a checkpoint (see :func:`load_classifier` for ``sigma`` and
    ``dataset``), refusing inputs that are not of its dataset's shape or not pixels in [0, 1]."""
    model, entries = load_classifier(path, device, sigma=sigma, dataset=dataset)
    info = dataset_info(entries["dataset"])
    return SmoothedClassifier(model, entries["num_classes"], entries["sigma"], input_shape=info.input_shape, input_range=(0.0, 1.0)), entries


def source_record(checkpoint: str | Path, dataset: str, split: str, device: torch.device | str) -> dict[str, Any]:
    """What a results file records about where its rows come from: the checkpoint (its path,
    and its SHA-256, which a resumed run must match), the dataset split and the device (whose
    type, and on CUDA the GPU's :func:`~smoothcert.runtime.seeding.noise_fingerprint`, set the
    noise stream: a resumed run must match both)."""
    record = {"checkpoint": str(checkpoint), "checkpoint_sha256": file_digest(checkpoint), "dataset": dataset, "split": split,
              "device": str(device), "device_type": torch.device(device).type}
    fingerprint = noise_fingerprint(device)
    return record if fingerprint is None else {**record, "noise": fingerprint}


@dataclass
class OpenedCheckpoint:
    """A checkpoint ready to evaluate: its smoothed classifier, the data split, the provenance
    record a results file keeps (:func:`source_record`) and the checkpoint's entries."""

    smoothed: SmoothedClassifier
    data: Dataset
    record: dict[str, Any]
    entries: dict[str, Any]


def open_checkpoint(path: str | Path, device: str | torch.device, split: str, data_dir: str | Path | None = None, *,
                    sigma: float | None = None, dataset: str | None = None, diffusion: str | Path | None = None) -> OpenedCheckpoint:
    """The smoothed classifier of the checkpoint at ``path`` on ``device`` (:func:`load_smoothed`),
    the ``split`` of its dataset (read from ``data_dir`` where the dataset needs a folder) and its
    provenance record, with the checkpoint's SHA-256: the one loader of the commands, the
    pipeline and the studies. With ``diffusion`` (a DDPM folder), the classifier is smoothed behind
    its one-shot denoiser (:mod:`smoothcert.models.diffusion`), which the record names."""
    smoothed, entries = load_smoothed(path, device, sigma=sigma, dataset=dataset)
    data = load_dataset(entries["dataset"], split, data_dir)
    record = source_record(path, entries["dataset"], split, device)
    if diffusion is not None:
        denoiser, described = load_diffusion_denoiser(diffusion, smoothed.sigma, device)
        check_denoiser_fits(denoiser, dataset_info(entries["dataset"]).input_shape, device)
        smoothed.base_classifier = DenoisedClassifier(denoiser, smoothed.base_classifier).eval()
        record.update(described)
    return OpenedCheckpoint(smoothed, data, record, entries)
