"""Write a smaller CIFAR-10 folder (the released python format) from a larger one: the first
``--per-class`` training images of each class, spread over ``data_batch_1`` ... ``data_batch_5``,
and the test batch unchanged. A network fits a few hundred images in minutes on a CPU, so the
regime in which most training examples have all k noisy copies right is reached quickly.

    python scripts/cifar_subset.py --data-dir DATA --per-class 50 --out runs/cifar10-500
"""

from __future__ import annotations

import argparse
import pickle
import shutil
from pathlib import Path

import numpy as np

from smoothcert.data.cifar10 import TRAIN_FILES, batches_folder, read_batch
from smoothcert.storage.atomic import write_bytes_atomic


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` examples of each class, in their original order."""
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])
    return np.sort(keep)


def write_subset(data_dir: Path, out: Path, per_class: int) -> int:
    """Write the subset folder ``out/cifar-10-batches-py``; returns its number of training images."""
    source = batches_folder(data_dir)
    parts = [read_batch(source / name) for name in TRAIN_FILES]
    images = np.concatenate([p[0] for p in parts]).reshape(-1, 3 * 32 * 32)
    labels = np.concatenate([p[1] for p in parts])
    keep = first_per_class(labels, per_class)
    target = out / "cifar-10-batches-py"
    target.mkdir(parents=True, exist_ok=True)
    for name, rows in zip(TRAIN_FILES, np.array_split(keep, len(TRAIN_FILES))):
        batch = {b"data": images[rows], b"labels": labels[rows].tolist()}
        write_bytes_atomic(target / name, pickle.dumps(batch))
    shutil.copyfile(source / "test_batch", target / "test_batch")
    return len(keep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="a CIFAR-10 folder in the released python format")
    parser.add_argument("--per-class", type=int, required=True, help="training images kept per class")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.per_class < 1:
        parser.error(f"--per-class must be a positive number of images, got {args.per_class}")
    count = write_subset(Path(args.data_dir), Path(args.out), args.per_class)
    print(f"wrote {count} training images to {Path(args.out) / 'cifar-10-batches-py'}")


if __name__ == "__main__":
    main()
