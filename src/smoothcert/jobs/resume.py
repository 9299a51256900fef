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
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from smoothcert.storage.atomic import refuse_special, write_text_atomic
from smoothcert.storage.lock import exclusive
from smoothcert.storage.tsv import CERTIFY_COLUMNS, PREDICT_COLUMNS, VOTES_COLUMNS, parse_row

INFORMATIONAL = frozenset({"batch_size", "max_count", "selection_size", "checkpoint", "device", "world", "versions", "keep_heap"})


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


HEADERS = {"\t".join(columns) + "\n" for columns in (CERTIFY_COLUMNS, PREDICT_COLUMNS, VOTES_COLUMNS)}
"""A file holding one of these lines alone was started by a run that failed before its first row."""


def _started(path: Path) -> bool:
    """Whether ``path`` holds rows (or a killed run of several processes left shards of it): an
    empty file, or our header alone (a run that failed before its first row), is not started."""
    if leftover_shards(path):
        return True
    if not path.is_file() or not path.stat().st_size:
        return False
    return path.stat().st_size > max(map(len, HEADERS)) or path.read_text(errors="replace") not in HEADERS


def _differences(recorded: dict[str, Any], record: dict[str, Any]) -> list[str]:
    keys = sorted((set(recorded) | set(record)) - INFORMATIONAL)
    return [f"{key} was {recorded.get(key)!r}, now {record.get(key)!r}" for key in keys if recorded.get(key) != record.get(key)]


def _check_rows(path: Path, selected: set[int] | None) -> None:
    """Refuse to resume a file whose complete rows are not rows this run would have written: as
    many cells as the header, an integer ``idx`` not seen before and among ``selected`` (when
    given), and, in a certification file, values ``analyze`` accepts; names the line, before any
    file is written."""
    try:
        lines = path.read_text().split("\n")[:-1]
    except UnicodeDecodeError:
        raise ValueError(f"cannot resume {path}: it is not a text file (not UTF-8); move it away to start over") from None
    header = lines[0].split("\t") if lines else []
    seen: dict[int, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        cells = line.split("\t")
        try:
            if len(cells) != len(header) or not cells[0].isdigit():
                raise ValueError(f"not a row of it ({line[:60]!r})")
            if "radius" in header:
                parse_row(header, cells)
            idx = int(cells[0])
            if idx in seen:
                raise ValueError(f"idx {idx} is repeated (first on line {seen[idx]})")
            if selected is not None and idx not in selected:
                raise ValueError(f"idx {idx} is not among the examples this run selects (skip, max_count)")
        except ValueError as error:
            raise ValueError(f"cannot resume {path}: line {number}: {error}; move the file away to start over") from None
        seen[idx] = number


def _check_resumable(path: Path, record: dict[str, Any], selected: set[int] | None) -> None:
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
    _check_rows(path, selected)
    differences = _differences(recorded, record)
    if differences:
        raise ValueError(f"cannot resume {path} with other settings than it was started with: {'; '.join(differences)}. "
                         "Run with the recorded settings or choose another output file")
    if recorded.get("versions") != record.get("versions"):
        warnings.warn(f"{path} was started with {recorded.get('versions')} and is resumed with {record.get('versions')}; "
                      "rows before and after may differ in their last digits", RuntimeWarning, stacklevel=3)


@contextmanager
def writing(paths: Iterable[Path], record: dict[str, Any], resume: bool, selected: Iterable[int] | None = None) -> Iterator[None]:
    """The block is the one writer of the results files ``paths`` (:func:`smoothcert.storage.lock.exclusive`),
    which are checked and prepared first: a file that already holds rows is continued only with
    ``resume`` and only if its recorded settings agree with ``record`` (a ``ValueError`` names
    each difference), and only if each of its rows is one this run would write (``selected``: the
    indices the run selects); ``record`` is written beside each once every file has passed, so that
    a refusal leaves every file as it was."""
    paths = list(paths)
    for path in paths:
        if path.is_dir():
            raise ValueError(f"{path} is a folder; expected the path of a results file (a .tsv)")
        refuse_special(path)
        refuse_special(settings_path(path))
    with exclusive(paths):
        _prepare_outputs(paths, record, resume, None if selected is None else set(selected))
        yield


def _prepare_outputs(paths: list[Path], record: dict[str, Any], resume: bool, selected: set[int] | None) -> None:
    """Check that results files may be written with ``record``, then write ``record`` beside each.

    A file that already holds rows is continued only with ``resume`` and only if its recorded
    settings agree with ``record`` (a ``ValueError`` names each difference); nothing is written
    before every file has passed."""
    record = json.loads(json.dumps({**record, "versions": versions()}))  # the form it takes on disk
    for path in paths:
        if _started(path):
            if not resume:
                raise ValueError(f"{path} already holds results; pass --resume (resume=True) to continue it, or choose "
                                 "another output file")
            _check_resumable(path, record, selected)
    for path in paths:
        write_text_atomic(settings_path(path), json.dumps(record, indent=2) + "\n")
