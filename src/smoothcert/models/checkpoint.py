"""Checkpoints: a dict of plain values and tensors, written atomically and read back with
``torch.load(..., weights_only=True)``, which builds only tensors and plain containers and
refuses any pickle that would call other code; a file in torch's zip format is first checked
part by part against its CRC-32s, since torch reads damaged tensor data without complaint.

Ours hold ``format``, ``num_classes``, ``hparams`` (the whole training configuration, which
names the ``arch``, ``dataset``, ``sigma`` and ``method``), ``state_dict`` (of
``Sequential(Normalize, net)``), ``epoch`` (the last finished, counting from 1), ``optimizer``,
``scheduler`` and ``noise`` (where the training noise was drawn). Checkpoints of format 2 also
held arch, dataset, sigma and method at the top level; both are read, and the entries
:func:`load_checkpoint` returns name the four at the top level either way.

:func:`load_classifier` also reads the models Cohen et al. and Salman et al. released: a dict
with ``arch`` (``cifar_resnet20``, ``cifar_resnet110``, ``resnet50``) and the ``state_dict`` of
``Sequential(normalize, model)`` whose normalization holds no tensors, so every key starts with
``1.`` (the ImageNet model inside ``DataParallel``: ``1.module.conv1.weight``, ...). They do
not record sigma, which the caller gives.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from smoothcert.data import dataset_info
from smoothcert.storage.atomic import write_atomic
from smoothcert.models import build_model
from smoothcert.models.denoised import DenoisedClassifier
from smoothcert.models.dncnn import DnCNN
from smoothcert.rules import POSITIVE

FORMAT = "smoothcert-checkpoint-3"
READ_FORMATS = ("smoothcert-checkpoint-2", FORMAT)
"""The formats :func:`load_checkpoint` reads: 2 stored arch, dataset, sigma and method twice."""
REQUIRED = ("num_classes", "hparams", "state_dict", "epoch")
NAMED = ("arch", "dataset", "sigma", "method")
"""The settings of ``hparams`` that the loaded entries also name at the top level."""
DENOISER_FORMAT = "smoothcert-denoiser-1"
"""A denoiser trained for a frozen classifier (``smoothcert train-denoiser``): ``hparams`` (the
denoiser's settings, the classifier's path among them), ``classifier_sha256``, ``dataset``,
``num_classes``, the denoiser's ``state_dict``, ``epoch``, ``optimizer``, ``scheduler``."""
DENOISER_REQUIRED = ("hparams", "classifier_sha256", "dataset", "num_classes", "state_dict", "epoch")
PUBLISHED_DATASETS = {"cifar_resnet20": "cifar10", "cifar_resnet110": "cifar10", "resnet50": "imagenet"}
"""The dataset each architecture of the released checkpoints was trained on."""


def save_checkpoint(path: str | Path, **entries: Any) -> Path:
    """Write a classifier's ``entries`` (at least :data:`REQUIRED`, with :data:`NAMED` in
    ``hparams``) atomically."""
    missing = [key for key in REQUIRED if key not in entries] + [f"hparams[{key!r}]" for key in NAMED if key not in entries.get("hparams", {})]
    return _save(path, FORMAT, missing, entries)


def save_denoiser_checkpoint(path: str | Path, **entries: Any) -> Path:
    """Write a denoiser's ``entries`` (at least :data:`DENOISER_REQUIRED`) atomically."""
    return _save(path, DENOISER_FORMAT, [key for key in DENOISER_REQUIRED if key not in entries], entries)


def _save(path: str | Path, format: str, missing: list[str], entries: dict[str, Any]) -> Path:
    if missing:
        raise ValueError(f"a checkpoint needs {', '.join(missing)}")
    return write_atomic(path, "wb", lambda stream: torch.save({"format": format, **entries}, stream))


def _check_integrity(path: Path) -> None:
    """Refuse a truncated or damaged file in torch's zip format: torch itself reads damaged
    tensor data without complaint, so every part is checked against the CRC-32 the zip holds."""
    with path.open("rb") as stream:
        if stream.read(4) != b"PK\x03\x04":
            return  # torch's legacy format (as in the 2019 releases): torch.load checks its structure
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"{path} is truncated or damaged ({error}); expected a complete file written by torch.save") from None
    if damaged is not None:
        raise ValueError(f"{path} is corrupt: its part {damaged} fails its CRC-32 check; expected an intact file written by torch.save")


def _reason(error: Exception) -> str:
    """torch's reason for refusing a file, in one short line: for an unsafe pickle, the global it
    would call (not torch's advice on how to load it unsafely), without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if unsafe:
        return f"its pickle would call {unsafe.group(1)}, which weights-only loading refuses"
    return " ".join(text.split())[:200] or type(error).__name__


def _read(path: str | Path, map_location: str | torch.device) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}" + (" (it is a folder)" if path.is_dir() else ""))
    if not path.stat().st_size:
        raise ValueError(f"{path} is empty; expected a checkpoint written by torch.save")
    _check_integrity(path)
    try:
        entries = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for a truncated, corrupt or unsafe file
        raise ValueError(f"{path} is not a readable checkpoint (a file written by torch.save holding only tensors and plain "
                         f"values is expected): {_reason(error)}") from None
    if not isinstance(entries, dict):
        raise ValueError(f"{path} holds a {type(entries).__name__}, not a checkpoint dict")
    return entries


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing anything that is not one."""
    entries = _read(path, map_location)
    if entries.get("format") == DENOISER_FORMAT:
        missing = [key for key in DENOISER_REQUIRED if key not in entries]
        if missing:
            raise ValueError(f"{path} lacks {', '.join(missing)}; it is not a complete smoothcert denoiser checkpoint")
        return entries
    if entries.get("format") not in READ_FORMATS:
        raise ValueError(f"{path} is not a smoothcert checkpoint (expected a dict with format {FORMAT!r}, got "
                         f"{entries.get('format')!r})")
    return _named(entries, path)


def _named(entries: dict[str, Any], path: Path) -> dict[str, Any]:
    """The entries of one of our checkpoints with :data:`NAMED` at the top level (format 3 keeps
    them in ``hparams`` alone), refused when incomplete."""
    hparams = entries.get("hparams") if isinstance(entries.get("hparams"), dict) else {}
    named = {key: hparams[key] for key in NAMED if key in hparams and key not in entries}
    missing = [key for key in REQUIRED if key not in entries] + [key for key in NAMED if key not in entries and key not in named]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}; it is not a complete smoothcert checkpoint")
    return {**entries, **named}


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file, in hex: what a results file records to name its checkpoint."""
    with Path(path).open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _published(entries: dict[str, Any], path: Path, dataset: str | None) -> dict[str, Any]:
    """Our entries for a checkpoint in the released layout: the dataset from the architecture
    (unless given), the number of classes from the last layer, keys without ``module.``."""
    arch = entries["arch"]
    if arch not in PUBLISHED_DATASETS:
        raise ValueError(f"{path} has arch {arch!r}; checkpoints in Cohen et al.'s layout are read for "
                         f"{', '.join(PUBLISHED_DATASETS)}")
    state = entries["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: 'state_dict' is a {type(state).__name__}, expected a dict of tensors")
    state = {re.sub(r"(^|\.)module\.", r"\1", key): value for key, value in state.items()}
    head = state.get("1.fc.weight")
    if not isinstance(head, torch.Tensor) or head.dim() != 2:
        raise ValueError(f"{path}: no final layer '1.fc.weight' in its state_dict; expected the keys of Sequential(normalize, {arch})")
    return {"arch": arch, "dataset": dataset or PUBLISHED_DATASETS[arch], "num_classes": head.shape[0], "sigma": None,
            "method": "published", "state_dict": state, "epoch": entries.get("epoch")}


def _fit(model: torch.nn.Module, state: dict[str, Any], path: Path, arch: str, num_classes: int) -> None:
    """Load ``state`` into ``model`` or refuse, in one line, with what does not fit."""
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        expected, given = model.state_dict(), state
        missing = sorted(set(expected) - set(given))
        unexpected = sorted(set(given) - set(expected))
        shapes = [f"{key} {tuple(given[key].shape)} for {tuple(expected[key].shape)}" for key in sorted(set(expected) & set(given))
                  if isinstance(given[key], torch.Tensor) and given[key].shape != expected[key].shape]
        parts = [f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if keys]
        raise ValueError(f"{path} does not hold a {arch} with {num_classes} classes: {'; '.join(parts) or error}") from None


def refuse_non_finite_weights(state: dict[str, Any], path: Path) -> None:
    """Refuse weights that hold NaN or inf: a valid file (its CRC-32s hold) can carry them, and
    argmax over NaN logits says class 0, so such a classifier would certify without complaint."""
    broken = [key for key, value in state.items()
              if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if broken:
        raise ValueError(f"{path} holds non-finite weights (NaN or inf) in {', '.join(broken[:3])}{' ...' if len(broken) > 3 else ''}; "
                         "a classifier with them certifies nothing meaningful: retrain, or load an earlier checkpoint")


def load_classifier(
    path: str | Path, device: str | torch.device = "cpu", sigma: float | None = None, dataset: str | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The base classifier stored in a checkpoint, in eval mode on ``device``, and the
    checkpoint's entries (``arch``, ``dataset``, ``num_classes``, ``sigma``, ...).

    Reads our checkpoints and those in the layout of Cohen et al.'s and Salman et al.'s released
    models (see the module's docstring). ``sigma`` sets the noise level to smooth at (required
    for released models, which do not record it; ours default to the training sigma).
    ``dataset`` names the data the model classifies: the checkpoint's own for ours, and, for a
    released model, the one its architecture implies; another is refused unless it has the
    model's number of classes.
    """
    path = Path(path)
    if dataset is not None:
        dataset_info(dataset)  # refuses an unknown name
    entries = _read(path, device)
    if entries.get("format") == DENOISER_FORMAT:
        return _denoised(load_checkpoint(path, device), path, device, sigma, dataset)
    if entries.get("format") in READ_FORMATS:
        entries = _named(entries, path)
        if dataset is not None and dataset != entries["dataset"]:
            raise ValueError(f"{path} was trained on {entries['dataset']!r}, not {dataset!r}")
    elif "arch" in entries and "state_dict" in entries:
        entries = _published(entries, path, dataset)
    else:
        raise ValueError(f"{path} is neither a smoothcert checkpoint (format {FORMAT!r}) nor one in Cohen et al.'s layout "
                         "(a dict with 'arch' and 'state_dict')")
    info = dataset_info(entries["dataset"])
    if entries["num_classes"] != info.num_classes:
        raise ValueError(f"{path} holds a classifier over {entries['num_classes']} classes, but {info.name} has {info.num_classes}")
    if sigma is not None:
        entries["sigma"] = sigma
    if entries["sigma"] is None:
        raise ValueError(f"{path} is in the layout of Cohen et al.'s released models, which do not record sigma: give the noise "
                         "level it was trained at (--sigma; e.g. 0.25 for a model from a folder noise_0.25)")
    POSITIVE.check("sigma", entries["sigma"])
    refuse_non_finite_weights(entries["state_dict"], path)
    model = build_model(entries["arch"], entries["num_classes"], info.mean, info.std)
    _fit(model, entries["state_dict"], path, entries["arch"], entries["num_classes"])
    return model.to(device).eval(), entries


def classifier_of(denoiser_entries: dict[str, Any], path: Path) -> Path:
    """The checkpoint of the classifier a denoiser serves, refused when it is missing or is no
    longer the file the denoiser was trained for (its SHA-256 differs)."""
    classifier = Path(denoiser_entries["hparams"]["classifier"])
    if not classifier.is_file():
        raise FileNotFoundError(f"{path} is a denoiser for the classifier {classifier}, which is not there; put the classifier back "
                                "or retrain the denoiser")
    if file_digest(classifier) != denoiser_entries["classifier_sha256"]:
        raise ValueError(f"{path} is a denoiser for {classifier}, but that file has changed since (its SHA-256 differs); retrain "
                         "the denoiser for the classifier as it is now")
    return classifier


def _denoised(entries: dict[str, Any], path: Path, device: str | torch.device, sigma: float | None,
              dataset: str | None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The denoiser of ``entries`` in front of the frozen classifier it was trained for, and the
    pair's entries (``arch`` ``dncnn+<classifier's>``, the classifier's dataset and classes, the
    denoiser's sigma unless ``sigma`` is given)."""
    hparams = entries["hparams"]
    classifier, inner = load_classifier(classifier_of(entries, path), device, sigma=hparams["sigma"], dataset=dataset)
    info = dataset_info(inner["dataset"])
    denoiser = DnCNN(info.input_shape[0], hparams["depth"], hparams["width"])
    refuse_non_finite_weights(entries["state_dict"], path)
    _fit(denoiser, entries["state_dict"], path, f"DnCNN of depth {hparams['depth']} and width {hparams['width']}", inner["num_classes"])
    named = {"arch": f"dncnn+{inner['arch']}", "dataset": inner["dataset"], "num_classes": inner["num_classes"],
             "sigma": hparams["sigma"] if sigma is None else sigma, "method": f"denoiser ({hparams['objective']})"}
    POSITIVE.check("sigma", named["sigma"])
    return DenoisedClassifier(denoiser, classifier).to(device).eval(), {**entries, **named, "classifier": inner}
