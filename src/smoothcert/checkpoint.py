"""Checkpoints: a dict of plain values and tensors, written atomically and read back with
``torch.load(..., weights_only=True)``.

Keys: ``format``, ``arch``, ``dataset``, ``num_classes``, ``sigma``, ``method``, ``hparams`` (the
whole training configuration), ``state_dict`` (of ``Sequential(Normalize, net)``), ``epoch``
(the last finished, counting from 1), ``optimizer``, ``scheduler``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from smoothcert.data import dataset_info
from smoothcert.files import torch_save_atomic
from smoothcert.models import build_model

FORMAT = "smoothcert-checkpoint-1"
REQUIRED = ("arch", "dataset", "num_classes", "sigma", "method", "hparams", "state_dict", "epoch")


def save_checkpoint(path: str | Path, **entries: Any) -> Path:
    missing = [key for key in REQUIRED if key not in entries]
    if missing:
        raise ValueError(f"a checkpoint needs {', '.join(missing)}")
    return torch_save_atomic({"format": FORMAT, **entries}, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing anything that is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        entries = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not a checkpoint
        raise ValueError(f"{path} is not a readable smoothcert checkpoint: {error}") from error
    if not isinstance(entries, dict) or entries.get("format") != FORMAT:
        raise ValueError(f"{path} is not a smoothcert checkpoint (expected a dict with format {FORMAT!r})")
    return entries


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """The base classifier stored in a checkpoint, in eval mode on ``device``, and the checkpoint."""
    entries = load_checkpoint(path, map_location=device)
    info = dataset_info(entries["dataset"])
    model = build_model(entries["arch"], entries["num_classes"], info.mean, info.std)
    model.load_state_dict(entries["state_dict"])
    return model.to(device).eval(), entries
