"""The settings record beside every results file (``<TSV>.json``) and the check that a resumed
run asks for the same results as the run that started the file.

A record is a flat dict: every setting the rows depend on (sigma, n0, n, alpha, method, seed,
skip, the checkpoint's SHA-256, dataset, split, device type, fast options, ...), plus a few
that only describe the run (:data:`INFORMATIONAL`). A resumed run must agree on every other key;
it may change the batch size (counts do not depend on it, noise is drawn in fixed blocks), the
number of examples (``max_count`` only extends the run), the number of processes (a sharded
run gives each example the same numbers) and where the checkpoint lies (its digest is checked).
"""

from __future__ import annotations

import glob
import json
import platform
import warnings
from pathlib import Path
from typing import Any, Iterable

from smoothcert.files.atomic import write_text_atomic

INFORMATIONAL = frozenset({"batch_size", "max_count", "checkpoint", "device", "world", "versions", "keep_heap"})


def versions() -> dict[str, str]:
    """The versions of the software that computes the rows."""
    import numpy
    import scipy
    import torch

    from smoothcert import __version__

    return {"smoothcert": __version__, "torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "python": platform.python_version()}


def settings_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def shard_path(path: Path, rank: int, world: int) -> Path:
    """Where process ``rank`` of ``world`` writes its rows of ``path`` until they are merged."""
    return path.with_name(f"{path.name}.rank{rank}of{world}")


def leftover_shards(path: Path) -> list[Path]:
    """Shards of ``path`` left by a run of several processes that did not finish."""
    return sorted(path.parent.glob(f"{glob.escape(path.name)}.rank*of*"))


def _started(path: Path) -> bool:
    return (path.is_file() and path.stat().st_size > 0) or bool(leftover_shards(path))


def _differences(recorded: dict[str, Any], record: dict[str, Any]) -> list[str]:
    keys = sorted((set(recorded) | set(record)) - INFORMATIONAL)
    return [f"{key} was {recorded.get(key)!r}, now {record.get(key)!r}" for key in keys if recorded.get(key) != record.get(key)]


def _check_resumable(path: Path, record: dict[str, Any]) -> None:
    source = settings_path(path)
    if not source.is_file():
        raise ValueError(f"cannot resume {path}: its settings file {source} is missing, so nothing shows that its rows were "
                         "made with these settings; move the file away to start over")
    try:
        recorded = json.loads(source.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"cannot resume {path}: its settings file {source} is not valid JSON ({error})") from None
    if not isinstance(recorded, dict):
        raise ValueError(f"cannot resume {path}: its settings file {source} does not hold a JSON object")
    differences = _differences(recorded, record)
    if differences:
        raise ValueError(f"cannot resume {path} with other settings than it was started with: {'; '.join(differences)}. "
                         "Run with the recorded settings or choose another output file")
    if recorded.get("versions") != record.get("versions"):
        warnings.warn(f"{path} was started with {recorded.get('versions')} and is resumed with {record.get('versions')}; "
                      "rows before and after may differ in their last digits", RuntimeWarning, stacklevel=3)


def prepare_outputs(paths: Iterable[Path], record: dict[str, Any], resume: bool) -> None:
    """Check that results files may be written with ``record``, then write ``record`` beside each.

    A file that already holds rows is continued only with ``resume`` and only if its recorded
    settings agree with ``record`` (a ``ValueError`` names each difference); nothing is written
    before every file has passed."""
    paths = list(paths)
    record = json.loads(json.dumps({**record, "versions": versions()}))  # the form it takes on disk
    for path in paths:
        if path.is_dir():
            raise ValueError(f"{path} is a folder; expected the path of a results file (a .tsv)")
        if _started(path):
            if not resume:
                raise ValueError(f"{path} already holds results; pass --resume (resume=True) to continue it, or choose "
                                 "another output file")
            _check_resumable(path, record)
    for path in paths:
        write_text_atomic(settings_path(path), json.dumps(record, indent=2) + "\n")
