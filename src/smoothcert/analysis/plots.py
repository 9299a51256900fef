"""Certified accuracy against radius, as PNG and PDF (matplotlib, loaded on first use)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from smoothcert.storage.atomic import write_bytes_atomic

PLOT_STEP = 0.01
"""Radius step of the plotted curves."""


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
