"""The run's per-epoch log: ``log.csv`` beside the checkpoint (rewritten atomically after every
epoch), and TensorBoard scalars where tensorboard is installed."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from smoothcert.storage.atomic import write_text_atomic
from smoothcert.training.diagnostics import EPOCH_STATS

LOG_FIELDS = ("epoch", "lr", *EPOCH_STATS, "test_noisy_acc", "seconds")
"""The columns of ``log.csv``."""


def write_log(path: Path, rows: list[dict[str, Any]], fields: tuple[str, ...] = LOG_FIELDS) -> None:
    """Write every epoch's row (its ``fields``) to ``path`` atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def read_log(path: Path, up_to_epoch: int, fields: tuple[str, ...] = LOG_FIELDS) -> list[dict[str, Any]]:
    """The rows of ``path`` up to epoch ``up_to_epoch`` (those of a resumed checkpoint); none if
    absent. A column the log was written without (by an earlier version) reads ``nan``: unknown."""
    if not path.is_file():
        return []
    with path.open() as handle:
        return [{**dict.fromkeys(fields, "nan"), **row} for row in csv.DictReader(handle) if int(row["epoch"]) <= up_to_epoch]


class Board:
    """TensorBoard scalars of each epoch's row under ``out_dir/tensorboard``; nothing without tensorboard."""

    def __init__(self, out_dir: Path, fields: tuple[str, ...] = LOG_FIELDS) -> None:
        self.fields = fields
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            self.writer = None
        else:
            self.writer = SummaryWriter(str(out_dir / "tensorboard"))

    def add(self, row: dict[str, Any]) -> None:
        if self.writer is not None:
            for key in self.fields[1:]:
                if isinstance(row[key], (int, float)):
                    self.writer.add_scalar(key, float(row[key]), row["epoch"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
