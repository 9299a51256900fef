"""Tables of summaries (:mod:`smoothcert.analysis.accuracy`): Markdown, LaTeX like the paper's
Table 1, and CSV with the lower bounds; a row may aggregate several runs (mean ± standard deviation)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR
from typing import Sequence

import numpy as np

from smoothcert.analysis.accuracy import Summary
from smoothcert.storage.tsv import format_value


def table_columns(radii: Sequence[float]) -> list[str]:
    return [f"{r:g}" for r in radii] + ["ACR", "abstain"]


def summary_values(summary: Summary) -> np.ndarray:
    return np.array([*summary.accuracy, summary.acr, summary.abstention])


@dataclass
class Row:
    """A table row: values per column and, when it aggregates several runs, their spread."""

    name: str
    values: np.ndarray
    spread: np.ndarray | None = None


def summary_rows(summaries: Sequence[Summary]) -> tuple[list[str], list[Row]]:
    """Columns (the radii, ACR, abstention rate) and one row per summary."""
    return table_columns(summaries[0].radii), [Row(s.name, summary_values(s)) for s in summaries]


def mean_row(name: str, summaries: Sequence[Summary]) -> Row:
    """The mean and standard deviation (ddof = 1) of several runs' summaries, e.g. seeds."""
    values = np.array([summary_values(s) for s in summaries])
    spread = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])
    return Row(name, values.mean(axis=0), spread)


def _cell(value: float, spread: float | None, digits: int) -> str:
    """``value``, with ``± spread`` unless the spread is None or NaN (a column without one)."""
    return f"{value:.{digits}f}" if spread is None or math.isnan(spread) else f"{value:.{digits}f} ± {spread:.{digits}f}"


def render_markdown(columns: Sequence[str], rows: Sequence[Row], digits: int = 3) -> str:
    header = ["radius", *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        spreads = row.spread if row.spread is not None else [None] * len(row.values)
        lines.append("| " + " | ".join([row.name, *(_cell(v, e, digits) for v, e in zip(row.values, spreads))]) + " |")
    return "\n".join(lines)


def render_latex(columns: Sequence[str], rows: Sequence[Row], digits: int = 2, lower_is_better: Sequence[str] = ("abstain",)) -> str:
    """A tabular like the paper's Table 1: the best value of each column in bold (the lowest for
    ``lower_is_better`` columns, the highest otherwise); spreads follow as ``$\\pm$``."""
    rounded = np.round(np.array([row.values for row in rows]), digits)
    lower = np.array([c in lower_is_better for c in columns])
    best = np.where(lower, rounded.min(axis=0), rounded.max(axis=0))
    lines = [r"\begin{tabular}{l" + "r" * len(columns) + "}", r"\hline",
             r"$\ell_2$ radius & " + " & ".join(columns) + r" \\", r"\hline"]
    for row, values in zip(rows, rounded):
        cells = []
        for i, value in enumerate(values):
            text = rf"\textbf{{{value:.{digits}f}}}" if value == best[i] else f"{value:.{digits}f}"
            if row.spread is not None:
                text += rf" $\pm$ {row.spread[i]:.{digits}f}"
            cells.append(text)
        lines.append(_latex_escape(row.name) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines)


def markdown_table(summaries: Sequence[Summary], digits: int = 3) -> str:
    """Rows: results; columns: certified accuracy at each radius, ACR and abstention rate."""
    return render_markdown(*summary_rows(summaries), digits=digits)


def latex_table(summaries: Sequence[Summary], digits: int = 2) -> str:
    return render_latex(*summary_rows(summaries), digits=digits)


def _latex_escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&").replace("#", r"\#")


def csv_table(summaries: Sequence[Summary], rho: float) -> str:
    """One row per results file: name, examples, the certificates' level ``alpha``, the estimated
    accuracy at each radius, the lower bound at each radius (valid with probability ``1 - rho``,
    rounded down), ACR, abstention rate."""
    radii = summaries[0].radii
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["name", "examples", "alpha", "rho", *(f"acc@{r:g}" for r in radii), *(f"lower@{r:g}" for r in radii), "acr",
                     "abstain"])
    for s in summaries:
        writer.writerow([s.name, s.examples, format_value(s.alpha), format_value(rho), *(format_value(float(v)) for v in s.accuracy),
                         *(format_value(float(v), ROUND_FLOOR) for v in s.lower_bound), format_value(s.acr),
                         format_value(s.abstention)])
    return buffer.getvalue()
