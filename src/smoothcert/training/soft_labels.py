"""CAT-RS's target ``pi(x)``: the smoothed predictions of the training examples, read from the
votes file ``smoothcert votes --split train`` writes (:mod:`smoothcert.runs.votes`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from smoothcert.files.tsv import VOTES_COLUMNS, complete_lines


def read_votes(path: str | Path, dataset: str, size: int) -> np.ndarray:
    """``pi(x)``, the votes of each of the ``size`` examples as shares, shape ``(size, C)``, from a
    votes file made on ``dataset``'s training split; refuses one made on another dataset or split,
    or one that misses examples."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no votes file {path}; make it with smoothcert votes --split train (CAT-RS's smoothed predictions)")
    settings = path.with_name(path.name + ".json")
    recorded = json.loads(settings.read_text()) if settings.is_file() else {}
    if recorded.get("dataset") != dataset or recorded.get("split") != "train":
        raise ValueError(f"{path} holds votes on {recorded.get('dataset')!r} ({recorded.get('split')} split), not on the training split "
                         f"of {dataset!r}")
    rows = [line.split("\t") for line in complete_lines(path, VOTES_COLUMNS)[1:] if line]
    votes = {int(idx): np.array([int(v) for v in cells.split(",")], dtype=np.float64) for idx, _, cells in rows}
    missing = size - len(votes.keys() & set(range(size)))
    if missing:
        raise ValueError(f"{path} misses the votes of {missing} of the {size} training examples; resume it with --resume")
    table = np.stack([votes[i] for i in range(size)])
    return table / table.sum(axis=1, keepdims=True)
