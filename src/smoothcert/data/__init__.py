"""Datasets by name. Pixels are in [0, 1]; noise is added in that space and each model
standardizes its input in its first layer with the dataset's ``mean`` and ``std``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from smoothcert.data.cifar10 import Cifar10
from smoothcert.data.embedded import load_embedded_mnist
from smoothcert.data.imagenet import load_imagenet

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    needs_data_dir: bool
    load: Callable[[Path | None, str], Dataset]


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", 10, (1, 28, 28), (0.1307,), (0.3081,), False, lambda _, split: load_embedded_mnist(split)),
    "cifar10": DatasetInfo("cifar10", 10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), True,
                           lambda root, split: Cifar10(root, split)),
    "imagenet": DatasetInfo("imagenet", 1000, (3, 224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), True,
                            lambda root, split: load_imagenet(root, split)),
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def load_dataset(name: str, split: str, data_dir: str | Path | None = None) -> Dataset:
    """The ``split`` (``"train"`` or ``"test"``; ImageNet's test split is its ``val`` folder)
    of dataset ``name``. ``mnist`` is the embedded default and needs no ``data_dir``."""
    info = dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if info.needs_data_dir and data_dir is None:
        raise ValueError(f"dataset {name!r} is read from a folder: pass data_dir (--data-dir)")
    return info.load(Path(data_dir) if data_dir is not None else None, split)
