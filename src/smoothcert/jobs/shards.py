"""Independent jobs: shard ``K`` of ``N`` of a selection, and the merge of the shards' files.

A cluster's batch scheduler (a Slurm job array) runs ``N`` jobs that share nothing: job ``K``
(``--shard K/N``) takes the ``K``-th of every ``N`` selected examples and writes its own results
file and settings record, which also says the shard and how many examples the whole selection
holds. Every example's noise comes from (seed, idx), so a shard's rows are those one process
writes. :func:`merge_shards` checks that the shards' settings agree and that together they
cover the selection once, and writes the file one process writes.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

from smoothcert.storage.atomic import write_text_atomic
from smoothcert.storage.tsv import complete_lines
from smoothcert.jobs.resume import INFORMATIONAL, settings_path, writing
from smoothcert.rules import Rule

SHARD_PATTERN = re.compile(r"^([1-9][0-9]*)/([1-9][0-9]*)$")


def _names_a_shard(spelling: object) -> bool:
    match = SHARD_PATTERN.match(spelling) if isinstance(spelling, str) else None
    return match is not None and int(match[1]) <= int(match[2])


SHARD = Rule(_names_a_shard, "must read K/N, shard K of N independent jobs, with 1 <= K <= N (e.g. 2/8)")


def parse_shard(spelling: str) -> tuple[int, int]:
    """``(K, N)`` of ``"K/N"``, refused in one line unless ``1 <= K <= N``."""
    SHARD.check("shard", spelling)
    k, n = spelling.split("/")
    return int(k), int(n)


def shard_of(selected: Sequence[int], shard: str | None) -> list[int]:
    """The examples of ``selected`` that shard ``K/N`` takes: the ``K``-th of every ``N``."""
    if shard is None:
        return list(selected)
    k, n = parse_shard(shard)
    return list(selected[k - 1::n])


def shard_record(record: dict[str, Any], selected: Sequence[int], shard: str | None) -> dict[str, Any]:
    """``record`` with, for a shard, the shard and the size of the whole selection."""
    return record if shard is None else {**record, "shard": shard, "selection_size": len(selected)}


def merge_shards(outfile: str | Path, shards: Sequence[str | Path]) -> Path:
    """Merge the results files of the jobs ``--shard 1/N`` ... ``N/N`` into ``outfile``, refusing
    (in one line, nothing written) shards whose settings differ, a shard missing or given twice,
    an example in two shards, or a selection not covered; the merged file holds the rows sorted by
    ``idx`` and the shards' common record, as one process writes it."""
    paths = [Path(p) for p in shards]
    records = [_record_of(p) for p in paths]
    _check_shards_cover(paths, records)
    common = {key: value for key, value in records[0].items() if key not in ("shard", "selection_size")}
    for path, record in zip(paths[1:], records[1:]):
        keys = sorted((set(record) | set(records[0])) - INFORMATIONAL - {"shard", "versions"})
        differences = [f"{key} is {record.get(key)!r} there, {records[0].get(key)!r} in {paths[0]}" for key in keys
                       if record.get(key) != records[0].get(key)]
        if differences:
            raise ValueError(f"cannot merge {path}: its settings differ from the other shards': {'; '.join(differences)}")
        if record.get("versions") != records[0].get("versions"):
            warnings.warn(f"{path} was written with {record.get('versions')}, {paths[0]} with {records[0].get('versions')}; "
                          "rows may differ in their last digits", RuntimeWarning, stacklevel=2)
    header, rows = _rows_of(paths)
    expected = _selection(records[0])
    if sorted(rows) != expected:
        missing = sorted(set(expected) - set(rows))
        raise ValueError(f"cannot merge: the shards do not cover the selection of {len(expected)} examples; missing "
                         f"{len(missing)} (first idx {missing[0] if missing else None}); finish the shards with --resume first")
    outfile = Path(outfile)
    with writing([outfile], common, resume=False):
        write_text_atomic(outfile, header + "".join(rows[i] + "\n" for i in sorted(rows)))
    return outfile


def _record_of(path: Path) -> dict[str, Any]:
    source = settings_path(path)
    if not path.is_file() or not source.is_file():
        raise ValueError(f"cannot merge {path}: it or its settings record {source} is missing")
    record = json.loads(source.read_text())
    if not isinstance(record, dict) or "shard" not in record:
        raise ValueError(f"cannot merge {path}: its settings record does not name a shard (was it written with --shard K/N?)")
    return record


def _check_shards_cover(paths: list[Path], records: list[dict[str, Any]]) -> None:
    """Every shard ``1/N`` ... ``N/N`` exactly once."""
    named = [parse_shard(record["shard"]) for record in records]
    totals = {n for _, n in named}
    if len(totals) != 1:
        raise ValueError(f"cannot merge shards of different splits: {', '.join(r['shard'] for r in records)}")
    total = totals.pop()
    given = [k for k, _ in named]
    twice = sorted({k for k in given if given.count(k) > 1})
    missing = sorted(set(range(1, total + 1)) - set(given))
    if twice or missing:
        raise ValueError(f"cannot merge: shards of {total} must each be given once; given twice: {[f'{k}/{total}' for k in twice]}, "
                         f"missing: {[f'{k}/{total}' for k in missing]}")


def _rows_of(paths: list[Path]) -> tuple[str, dict[int, str]]:
    """The header line and the complete rows (by ``idx``) of every shard (:func:`complete_lines`:
    a partial last row is left out, other columns than the first shard's refused); an example in
    two shards is refused."""
    columns = paths[0].read_text().split("\n", 1)[0].split("\t")
    rows: dict[int, str] = {}
    where: dict[int, Path] = {}
    for path in paths:
        for line in complete_lines(path, columns)[1:]:
            idx = int(line.split("\t", 1)[0])
            if idx in rows:
                raise ValueError(f"cannot merge: idx {idx} is in both {where[idx]} and {path}")
            rows[idx], where[idx] = line, path
    return "\t".join(columns) + "\n", rows


def _selection(record: dict[str, Any]) -> list[int]:
    """The whole selection the shards split: every ``skip``-th index from 0, ``selection_size`` of them."""
    return list(range(0, int(record.get("skip", 1)) * int(record["selection_size"]), int(record.get("skip", 1))))
