"""Certification and prediction results as TSV files, one row per example, header first.

The first columns are those of Cohen et al.'s reference code (``idx label predict radius correct
time``), so their analysis scripts read our files; ours follow. Rows are appended and flushed
one at a time, so a long run can be resumed: :class:`ResultsFile` drops a trailing partial line
(a run cut off mid-write) and reports which ``idx`` are already done.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Context, Decimal
from pathlib import Path
from typing import Any, Sequence

from smoothcert.storage.atomic import write_text_atomic

CERTIFY_COLUMNS = ("idx", "label", "predict", "radius", "correct", "time", "pa_lower", "pb_upper", "alpha_prime", "level", "samples")
PREDICT_COLUMNS = ("idx", "label", "predict", "correct", "time", "pvalue")
VOTES_COLUMNS = ("idx", "label", "votes")
"""The votes file of ``smoothcert votes``: each class's votes joined by commas."""


DIGITS = 6
"""Significant digits of the floats written."""

DIRECTED = {"radius": ROUND_DOWN, "pa_lower": ROUND_FLOOR, "pb_upper": ROUND_CEILING, "level": ROUND_CEILING}
"""Columns holding bounds, and the direction they are rounded in, so that a written value stays a
valid bound: radii toward zero (a written radius never exceeds the certified one), the lower
bound on pA down, the upper bound on pB and the level (the probability that the certificate is
wrong) up. Other floats are rounded to nearest."""


def format_value(value: Any, rounding: str | None = None) -> str:
    """``value`` as a cell: booleans as 0/1, floats to :data:`DIGITS` significant digits, rounded
    to nearest or, with ``rounding`` (a :mod:`decimal` rounding mode), in that direction.

    Directed rounding keeps the nearest cell when reading it back gives a float on the right side
    of ``value`` (so ``alpha = 0.001`` is written ``0.001``, not ``0.00100001``); otherwise it is
    exact: the float is converted to its exact decimal value, rounded in ``decimal`` and printed.
    Reading that cell back gives the float nearest to the decimal, which lies on the same side of
    ``value``, since ``value`` is itself a float and rounding to nearest is monotone."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        nearest = f"{value:.{DIGITS}g}"
        if rounding is None or not math.isfinite(value) or _on_side(float(nearest), value, rounding):
            return nearest
        return f"{float(Context(prec=DIGITS, rounding=rounding).plus(Decimal(value))):.{DIGITS}g}"
    return str(value)


def _on_side(written: float, value: float, rounding: str) -> bool:
    """Whether ``written`` lies where ``rounding`` would put it: at or above ``value`` (ceiling),
    at or below it (floor), or no farther from zero (down)."""
    if rounding == ROUND_CEILING:
        return written >= value
    if rounding == ROUND_FLOOR:
        return written <= value
    return abs(written) <= abs(value)


def complete_lines(path: Path, columns: Sequence[str]) -> list[str]:
    """The complete lines of an existing results file, header first, without the partial row a
    run killed mid-write leaves after the last newline; refuses a file with other columns."""
    complete = path.read_text().split("\n")[:-1]
    if not complete or tuple(complete[0].split("\t")) != tuple(columns):
        raise ValueError(f"{path} exists with other columns than {'  '.join(columns)}; move it away or pick another output file")
    return complete


def completed_indices(path: str | Path, columns: Sequence[str]) -> set[int]:
    """The ``idx`` of every complete row of a results file (none if it does not exist)."""
    path = Path(path)
    if not path.is_file() or not path.stat().st_size:
        return set()
    return _indices(complete_lines(path, columns))


def _indices(lines: Sequence[str]) -> set[int]:
    """The ``idx`` of the rows among ``lines`` (header first)."""
    return {int(line.split("\t", 1)[0]) for line in lines[1:] if line}


class ResultsFile:
    """A results TSV with ``columns``, opened for appending rows; existing rows are kept and a
    trailing partial row (a run cut off mid-write) is dropped."""

    def __init__(self, path: str | Path, columns: Sequence[str]) -> None:
        self.path, self.columns = Path(path), tuple(columns)
        if self.path.is_file() and self.path.stat().st_size:
            complete = complete_lines(self.path, self.columns)
            kept = "\n".join(complete) + "\n"
            if len(kept.encode()) != self.path.stat().st_size:  # a partial row follows the complete ones: drop it
                write_text_atomic(self.path, kept)
            self.done = _indices(complete)
        else:
            write_text_atomic(self.path, "\t".join(self.columns) + "\n")
            self.done = set()
        self._stream = self.path.open("a")

    def append(self, row: dict[str, Any]) -> None:
        self._stream.write("\t".join(format_value(row[c], DIRECTED.get(c)) for c in self.columns) + "\n")
        self._stream.flush()
        self.done.add(int(row["idx"]))

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> "ResultsFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DURATION = re.compile(r"^(?:(\d+) days?, )?(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


def parse_time(text: str) -> float:
    """Seconds from a ``time`` cell: a float (``15.4``) or a ``datetime.timedelta`` string
    (``0:00:15.412345``, ``1 day, 2:03:04``) as Cohen et al.'s logs mix both."""
    text = text.strip()
    match = _DURATION.match(text)
    if match:
        days, hours, minutes, seconds = match.groups()
        return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"time cell {text!r} is neither seconds nor an H:MM:SS duration") from None


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a certification TSV (ours or Cohen et al.'s) as dicts with ``idx``, ``label``,
    ``predict`` (int), ``radius``, ``time`` (float), ``correct`` (bool) and any further columns
    as strings. Every row is checked (:func:`_check_row`) and every ``idx`` must be new; a
    refusal names the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file {path}; expected a TSV written by smoothcert certify or Cohen et al.'s certify.py")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark, as some editors write, is not part of the header
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file (not UTF-8); expected a certification TSV") from None
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise ValueError(f"{path} is empty; expected a header 'idx label predict radius correct time'")
    header = lines[0][1].split("\t")
    missing = [c for c in ("idx", "label", "predict", "radius", "correct", "time") if c not in header]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}; expected a certification TSV with header 'idx label predict radius correct time'")
    rows, first_seen = [], {}
    for number, line in lines[1:]:
        try:
            row = parse_row(header, line.split("\t"))
            if row["idx"] in first_seen:
                raise ValueError(f"idx {row['idx']} is repeated (first on line {first_seen[row['idx']]}); each example has one row "
                                 "per file (were two files concatenated?)")
        except ValueError as error:
            raise ValueError(f"{path}, line {number}: {error}") from None
        first_seen[row["idx"]] = number
        rows.append(row)
    return rows


def parse_row(header: Sequence[str], cells: Sequence[str]) -> dict[str, Any]:
    """One certification row's cells as :func:`read_results` returns them, checked by :func:`_check_row`."""
    if len(cells) != len(header):
        raise ValueError(f"{len(cells)} cells for {len(header)} columns")
    raw = dict(zip(header, cells))
    if raw["correct"].strip() not in ("0", "1"):
        raise ValueError(f"correct must be 0 or 1, got {raw['correct']!r}")
    row: dict[str, Any] = dict(raw)
    row.update(idx=int(raw["idx"]), label=int(raw["label"]), predict=int(raw["predict"]), radius=float(raw["radius"]),
               correct=raw["correct"].strip() == "1", time=parse_time(raw["time"]))
    _check_row(row)
    return row


def _check_row(row: dict[str, Any]) -> None:
    """A row's values must make sense: a finite non-negative radius (an abstention writes 0), and
    ``correct`` only where the prediction is the label."""
    if not (math.isfinite(row["radius"]) and row["radius"] >= 0):
        raise ValueError(f"radius must be a finite non-negative number, got {row['radius']!r}")
    if row["correct"] and row["predict"] != row["label"]:
        raise ValueError(f"correct is 1 but predict {row['predict']} is not label {row['label']}")
