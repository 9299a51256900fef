"""CIFAR-10 from the standard ``cifar-10-batches-py`` folder (the python pickles of
https://www.cs.toronto.edu/~kriz/cifar.html): ``data_batch_1`` ... ``data_batch_5`` for training,
``test_batch`` for testing, each a pickled dict with ``b"data"`` (N x 3072 uint8, channel-major)
and ``b"labels"``."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import transforms

TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
LAYOUT = "a folder 'cifar-10-batches-py' holding data_batch_1 ... data_batch_5 and test_batch (the python version of CIFAR-10)"


def batches_folder(data_dir: Path) -> Path:
    """The folder under ``data_dir`` that holds the batches (``data_dir`` itself or its ``cifar-10-batches-py``)."""
    for candidate in (data_dir, data_dir / "cifar-10-batches-py"):
        if (candidate / "test_batch").is_file():
            return candidate
    raise FileNotFoundError(f"no CIFAR-10 found under {data_dir}: expected {LAYOUT}")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python batch file as ``(N, 3, 32, 32)`` uint8 images and their labels, checked."""
    if not path.is_file():
        raise FileNotFoundError(f"missing CIFAR-10 file {path}: expected {LAYOUT}")
    try:
        with path.open("rb") as handle:
            entry = pickle.load(handle, encoding="bytes")
        data = np.asarray(entry[b"data"], dtype=np.uint8)
        labels = np.asarray(entry[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, EOFError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is not a CIFAR-10 python batch (a pickled dict with b'data' and b'labels'): {error}") from error
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"{path}: expected b'data' of shape (N, 3072) and N labels, got {data.shape} and {len(labels)}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


class Cifar10(Dataset):
    """Images as ``(3, 32, 32)`` floats in [0, 1]; training images get the paper's random crop 32
    with padding 4 and a horizontal flip."""

    def __init__(self, data_dir: str | Path, split: str) -> None:
        folder = batches_folder(Path(data_dir))
        parts = [read_batch(folder / name) for name in (TRAIN_FILES if split == "train" else TEST_FILES)]
        self.images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        self.labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        self.augment = (
            transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()])
            if split == "train" else None
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].float().div_(255.0)
        if self.augment is not None:
            image = self.augment(image)
        return image, int(self.labels[index])
