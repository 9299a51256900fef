"""``smoothcert analyze``: summaries of certification TSVs (ours or Cohen et al.'s) written as
tables (Markdown, LaTeX, CSV) and curves (PNG, PDF), each file labelled by its name."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from smoothcert.analysis.accuracy import DEFAULT_ALPHA, TABLE_RADII, Summary, certified_accuracy, check_levels, summarize
from smoothcert.analysis.plots import PLOT_STEP, plot_curves
from smoothcert.analysis.tables import csv_table, latex_table, markdown_table
from smoothcert.storage.atomic import write_text_atomic
from smoothcert.storage.tsv import read_results
from smoothcert.rules import NON_NEGATIVE


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
    if not radii:
        raise ValueError("radii must hold at least one radius, got none")
    for radius in radii:
        NON_NEGATIVE.check("a radius", radius)
    check_levels(DEFAULT_ALPHA if alpha is None else alpha, rho)
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
