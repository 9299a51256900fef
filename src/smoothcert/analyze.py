"""Approximate certified accuracy and its summaries, from certification TSVs (ours or Cohen et
al.'s), as tables (Markdown, LaTeX, CSV) and curves (PNG, PDF).

For certificates ``(label_i, r_i)`` of ``m`` examples:

- approximate certified accuracy at ``r`` (the spec's "Experiments"): ``mean_i [correct_i and r_i >= r]``;
- average certified radius (ACR): ``mean_i [correct_i] r_i``;
- abstention rate: ``mean_i [label_i = ABSTAIN]``;
- a lower bound on the true certified accuracy at ``r`` (:func:`accuracy_lower_bound`), valid with
  probability ``1 - rho`` over the certification noise: ``acc(r) - k* / m``.

The first three are estimates: they count the certificates as if every one were right. The
fourth is a bound, at the level the rows record.
"""

from __future__ import annotations

import csv
import io
import math
import os
from decimal import ROUND_FLOOR
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import stats

from smoothcert.certify import ABSTAIN
from smoothcert.files import write_bytes_atomic, write_text_atomic
from smoothcert.tsv import format_value, read_results

TABLE_RADII = tuple(round(0.25 * i, 2) for i in range(13))
"""0, 0.25, ..., 3.0: the radii of the paper's Table 1."""
PLOT_STEP = 0.01
"""Radius step of the plotted curves."""
DEFAULT_ALPHA = 0.001
"""The level assumed for rows that record none (Cohen et al.'s files; their code's default)."""


def certified_accuracy(rows: Sequence[dict[str, Any]], radii: Sequence[float] = TABLE_RADII) -> np.ndarray:
    """``mean_i [correct_i and radius_i >= r]`` for each ``r`` in ``radii``."""
    if not rows:
        raise ValueError("no certification rows to analyze")
    correct = np.array([bool(r["correct"]) for r in rows])
    radius = np.array([float(r["radius"]) for r in rows])
    return np.array([(correct & (radius >= r)).mean() for r in radii])


def average_certified_radius(rows: Sequence[dict[str, Any]]) -> float:
    """ACR: the radius of correctly certified examples, zero for the others, averaged over all."""
    return float(np.mean([float(r["radius"]) if r["correct"] else 0.0 for r in rows]))


def abstention_rate(rows: Sequence[dict[str, Any]]) -> float:
    return float(np.mean([int(r["predict"]) == ABSTAIN for r in rows]))


def _check_levels(alpha: float, rho: float) -> None:
    if not (0 < alpha < 1 and 0 < rho < 1):
        raise ValueError(f"alpha and rho must lie strictly between 0 and 1, got {alpha} and {rho}")


def false_certificate_allowance(m: int, alpha: float, rho: float) -> int:
    """``k*``, the smallest ``k`` with ``P(Bin(m, alpha) <= k) >= 1 - rho``.

    Computed as the smallest ``k`` with ``P(Bin(m, alpha) > k) <= rho`` (scipy's survival
    function, accurate where ``1 - cdf`` would cancel), starting from scipy's quantile and
    stepping to the exact boundary."""
    _check_levels(alpha, rho)
    if m < 1:
        raise ValueError(f"m must be a positive number of examples, got {m}")
    k = int(stats.binom.isf(rho, m, alpha))
    while k > 0 and stats.binom.sf(k - 1, m, alpha) <= rho:
        k -= 1
    while stats.binom.sf(k, m, alpha) > rho:
        k += 1
    return k


def accuracy_lower_bound(accuracy: np.ndarray, m: int, alpha: float, rho: float) -> np.ndarray:
    """A lower bound on the true certified accuracy of ``m`` certificates, each valid at level
    ``alpha``, holding with probability at least ``1 - rho``: ``max(0, acc(r) - k* / m)`` with
    ``k*`` of :func:`false_certificate_allowance`.

    Argument. Fix the test set and a radius ``r``. Example ``i`` is *falsely counted* when its
    certificate has the right label and a radius ``>= r`` but the smoothed classifier is not
    truly certified at ``r`` around it (its label there differs, or the ball of radius ``r``
    is not constant). A falsely counted certificate is a wrong certificate, so each example is
    falsely counted with probability at most ``alpha``, and the events are independent across
    examples (each draws its own noise). A sum of independent Bernoulli variables with means at
    most ``alpha`` is stochastically dominated by ``Bin(m, alpha)`` (couple each with a
    Bernoulli(``alpha``) that is 1 whenever it is), so the number ``F`` of falsely counted
    examples satisfies ``P(F > k*) <= P(Bin(m, alpha) > k*) <= rho``. The true certified
    accuracy is at least ``acc(r) - F / m``, hence at least ``acc(r) - k* / m`` with probability
    at least ``1 - rho``.
    """
    return np.maximum(0.0, np.asarray(accuracy) - false_certificate_allowance(m, alpha, rho) / m)


def certification_level(rows: Sequence[dict[str, Any]], alpha: float | None, source: str) -> float:
    """The level of the certificates in ``rows``: the largest ``level`` they record (a file of
    mixed levels is bounded at its worst), ``alpha`` or :data:`DEFAULT_ALPHA` for rows that
    record none. An ``alpha`` that contradicts a recorded level is refused."""
    recorded = [float(row["level"]) for row in rows if row.get("level") not in (None, "")]
    if not recorded:
        return DEFAULT_ALPHA if alpha is None else alpha
    level = max(recorded)
    if alpha is not None and not math.isclose(alpha, level, rel_tol=1e-6):
        raise ValueError(f"{source} records certificates valid at level {level:g}, but alpha {alpha:g} was given; "
                         "leave --alpha out to use the recorded level")
    return level


@dataclass
class Summary:
    """What :func:`summarize` reports for one results file."""

    name: str
    radii: tuple[float, ...]
    accuracy: np.ndarray
    lower_bound: np.ndarray
    acr: float
    abstention: float
    examples: int
    alpha: float
    """The level of the certificates the lower bound assumes."""


def summarize(rows: Sequence[dict[str, Any]], name: str, radii: Sequence[float] = TABLE_RADII,
              alpha: float | None = None, rho: float = 0.001) -> Summary:
    """The estimates and the lower bound of the module docstring for one file's ``rows``, at the
    level they record (see :func:`certification_level` for ``alpha``)."""
    accuracy = certified_accuracy(rows, radii)
    level = certification_level(rows, alpha, name)
    return Summary(name=name, radii=tuple(radii), accuracy=accuracy,
                   lower_bound=accuracy_lower_bound(accuracy, len(rows), level, rho),
                   acr=average_certified_radius(rows), abstention=abstention_rate(rows), examples=len(rows), alpha=level)


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
    return f"{value:.{digits}f}" if spread is None else f"{value:.{digits}f} ± {spread:.{digits}f}"


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


def plot_curves(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], path_stem: str | Path, paired: bool = False,
                title: str | None = None, spread: Sequence[np.ndarray | None] | None = None) -> list[Path]:
    """Certified accuracy against radius, one line per ``(name, radii, accuracy)``; with
    ``paired``, consecutive curves share a color, the first solid and the second dashed (as in
    the paper's Figures 1-2). ``spread`` (a standard deviation per curve) is drawn as a band.
    Writes ``<stem>.png`` and ``<stem>.pdf``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, radii, accuracy) in enumerate(curves):
        color = colors[(i // 2 if paired else i) % len(colors)]
        style = "--" if paired and i % 2 else "-"
        axes.plot(radii, accuracy, style, color=color, label=name)
        if spread is not None and spread[i] is not None:
            axes.fill_between(radii, accuracy - spread[i], accuracy + spread[i], color=color, alpha=0.15, linewidth=0)
    axes.set_xlabel(r"$\ell_2$ radius")
    axes.set_ylabel("certified accuracy")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".png", ".pdf"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=suffix[1:], dpi=150)
        written.append(write_bytes_atomic(stem.with_suffix(suffix), buffer.getvalue()))
    plt.close(figure)
    return written


def file_labels(paths: Sequence[str | Path]) -> list[str]:
    """A label per results file: its name without extension, or, where several files share that
    name, the shortest ending of their paths that tells them apart (``seed0/cert.certify`` and
    ``seed1/cert.certify`` for two runs' ``cert.certify.tsv``)."""
    parts = [[*Path(os.path.abspath(p)).parent.parts, Path(p).stem] for p in paths]
    labels = [p[-1] for p in parts]
    for stem in {label for label in labels if labels.count(label) > 1}:
        group = [i for i, label in enumerate(labels) if label == stem]
        depth = next((d for d in range(2, max(len(parts[i]) for i in group) + 1)
                      if len({"/".join(parts[i][-d:]) for i in group}) == len(group)), None)
        for i in group:
            labels[i] = "/".join(parts[i][-depth:]) if depth else str(paths[i])
    return labels


def analyze_files(paths: Sequence[str | Path], labels: Sequence[str] | None = None, out_dir: str | Path | None = None,
                  radii: Sequence[float] = TABLE_RADII, alpha: float | None = None, rho: float = 0.001, paired: bool = False,
                  name: str = "analysis") -> tuple[list[Summary], list[Path]]:
    """Summaries of certification TSVs and, with ``out_dir``, ``<name>.md``, ``.tex``, ``.csv``,
    ``.png`` and ``.pdf`` there. Each file's lower bound uses the level its rows record; ``alpha``
    is the level of files that record none (default :data:`DEFAULT_ALPHA`) and must agree with
    the others'."""
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"got {len(labels)} labels for {len(paths)} files; give one label per file")
    if not radii or not all(0 <= r < math.inf for r in radii):
        raise ValueError(f"radii must be non-negative finite numbers, got {list(radii)}")
    _check_levels(DEFAULT_ALPHA if alpha is None else alpha, rho)
    names = list(labels) if labels is not None else file_labels(paths)
    results = [read_results(p) for p in paths]
    summaries = [summarize(rows, str(path), radii, alpha, rho) for rows, path in zip(results, paths)]
    summaries = [replace(s, name=n) for s, n in zip(summaries, names)]
    written: list[Path] = []
    if out_dir is not None:
        out = Path(out_dir)
        written.append(write_text_atomic(out / f"{name}.md", markdown_table(summaries) + "\n"))
        written.append(write_text_atomic(out / f"{name}.tex", latex_table(summaries) + "\n"))
        written.append(write_text_atomic(out / f"{name}.csv", csv_table(summaries, rho)))
        fine = np.arange(0.0, max(radii) + PLOT_STEP / 2, PLOT_STEP)
        written += plot_curves([(n, fine, certified_accuracy(rows, fine)) for rows, n in zip(results, names)], out / name, paired=paired)
    return summaries, written
