"""CAT-RS's target ``pi(x)``: the smoothed predictions of the training examples, read from the
votes file ``smoothcert votes --split train`` writes (:mod:`smoothcert.jobs.votes`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from smoothcert.storage.tsv import VOTES_COLUMNS, complete_lines


def read_votes(path: str | Path, dataset: str, size: int) -> np.ndarray:
    """``pi(x)``, the votes of each of the ``size`` examples as shares, shape ``(size, C)``, from a
    votes file made on ``dataset``'s training split; refuses one made on another dataset or split,
    or one that misses examples."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no votes file {path}; make it with smoothcert votes --split train (CAT-RS's smoothed predictions)")
    settings = path.with_name(path.name + ".json")
    if not settings.is_file():
        raise ValueError(f"{path} has no settings record {settings.name} beside it, so nothing shows which split its votes are on; "
                         "make it with smoothcert votes --split train")
    recorded = json.loads(settings.read_text())
    if recorded.get("dataset") != dataset or recorded.get("split") != "train":
        raise ValueError(f"{path} holds votes on {recorded.get('dataset')!r} ({recorded.get('split')} split), not on the training split "
                         f"of {dataset!r}")
    votes = _votes_by_index(path, complete_lines(path, VOTES_COLUMNS), recorded.get("n"))
    missing = size - len(votes.keys() & set(range(size)))
    if missing:
        raise ValueError(f"{path} misses the votes of {missing} of the {size} training examples; resume it with --resume")
    table = np.stack([votes[i] for i in range(size)])
    return table / table.sum(axis=1, keepdims=True)


def _votes_by_index(path: Path, lines: list[str], total: int | None) -> dict[int, np.ndarray]:
    """Each row's votes by ``idx``, every row checked: non-negative integer votes adding up to
    ``total`` (the ``n`` its record states, when it states one), as many classes as the first row,
    and each ``idx`` once; a refusal names the file and the line."""
    votes: dict[int, np.ndarray] = {}
    first_seen: dict[int, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        try:
            idx, _, cells = line.split("\t")
            counts = [int(v) for v in cells.split(",")]
            if any(v < 0 for v in counts):
                raise ValueError
        except ValueError:
            raise ValueError(f"{path}, line {number}: votes must be non-negative integers joined by commas after idx and label, "
                             f"got {line[:80]!r}") from None
        index, classes = int(idx), len(next(iter(votes.values()), counts))
        if index in first_seen:
            raise ValueError(f"{path}, line {number}: idx {index} is repeated (first on line {first_seen[index]})")
        if len(counts) != classes:
            raise ValueError(f"{path}, line {number}: {len(counts)} votes where line 2 has {classes}")
        if not sum(counts):
            raise ValueError(f"{path}, line {number}: no votes (every count is 0); a votes file holds n votes per example")
        if total is not None and sum(counts) != total:
            raise ValueError(f"{path}, line {number}: its votes add up to {sum(counts)}, not the n = {total} its record states")
        votes[index], first_seen[index] = np.array(counts, dtype=np.float64), number
    return votes
