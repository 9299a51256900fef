"""Approximate certified accuracy (the spec's "Experiments" section): the share of examples that
are certified with the correct label at radius at least ``r``."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

TABLE_RADII = tuple(round(0.25 * i, 2) for i in range(13))
"""0, 0.25, ..., 3.0: the radii of the paper's Table 1."""


def certified_accuracy(rows: Sequence[dict[str, Any]], radii: Sequence[float] = TABLE_RADII) -> np.ndarray:
    """``mean_i [correct_i and radius_i >= r]`` for each ``r`` in ``radii``."""
    if not rows:
        raise ValueError("no certification rows to analyze")
    correct = np.array([bool(r["correct"]) for r in rows])
    radius = np.array([float(r["radius"]) for r in rows])
    return np.array([(correct & (radius >= r)).mean() for r in radii])


def markdown_table(results: dict[str, np.ndarray], radii: Sequence[float]) -> str:
    """A Markdown table with one row per named accuracy curve and one column per radius."""
    width = max(len(name) for name in results)
    lines = [f"| {'radius':<{width}} | " + " | ".join(f"{r:5.2f}" for r in radii) + " |",
             f"|{'-' * (width + 2)}|" + "|".join("-------" for _ in radii) + "|"]
    for name, accuracy in results.items():
        lines.append(f"| {name:<{width}} | " + " | ".join(f"{a:.3f}" for a in accuracy) + " |")
    return "\n".join(lines)
