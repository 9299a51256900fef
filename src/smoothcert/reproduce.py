"""The reproduction study on the embedded MNIST digits: analogs of the paper's Table 1 (Basic
vs ADRE_REG), Figure 1 (SmoothAdv vs ADRE_ADV) and Figure 2 (T-CERTIFY vs CERTIFY on the same
noise), over several training seeds, reported as mean and standard deviation.

Every run lives in its own folder under ``out_dir``; a finished training or certification is
never recomputed, so the study resumes where it stopped. A training run whose loss stops being
finite leaves a ``diverged.txt`` and is reported as diverged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from smoothcert.analyze import (
    PLOT_STEP,
    TABLE_RADII,
    Row,
    mean_row,
    plot_curves,
    render_latex,
    render_markdown,
    summarize,
    summary_values,
    table_columns,
)
from smoothcert.evaluate import CertifySettings
from smoothcert.files import ensure_writable_folder, write_text_atomic
from smoothcert.pipeline import train_and_certify
from smoothcert.train import TrainConfig, TrainingDiverged, preset
from smoothcert.tsv import read_results

CAP = 6.9
"""The per-example bound on l_adre of the stabilized ADRE variant: -log 0.001."""


@dataclass
class StudyPlan:
    sigmas: tuple[float, ...] = (0.25, 0.5, 1.0)
    lams: tuple[float, ...] = (0.1, 0.2, 0.3)
    seeds: tuple[int, ...] = (0, 1, 2)
    k: int = 8
    epochs: int = 8
    lr_step: int = 6
    adv_sigma: float = 0.5
    adv_eps: tuple[float, ...] = (0.25, 0.5)
    adv_steps: int = 2
    adv_lam: float = 0.2
    n0: int = 100
    n: int = 1000
    alpha: float = 0.001
    batch_size: int = 300
    test_skip: int = 5
    test_max: int | None = None
    radii: tuple[float, ...] = field(default_factory=lambda: TABLE_RADII)


FULL = StudyPlan()
QUICK = StudyPlan(sigmas=(0.5,), lams=(0.2,), seeds=(0, 1), k=4, epochs=2, lr_step=2, adv_eps=(0.5,), adv_steps=1,
                  n=300, test_skip=10, test_max=60, radii=tuple(round(0.25 * i, 2) for i in range(6)))


@dataclass
class Cell:
    """One trained configuration, over seeds: the rows it contributes to are named by ``label``."""

    label: str
    folder: str
    config: Callable[[int, str], TrainConfig]


def _table1_cells(plan: StudyPlan) -> dict[float, list[Cell]]:
    cells = {}
    for sigma in plan.sigmas:
        common = dict(sigma=sigma, epochs=plan.epochs, lr_step=plan.lr_step)
        row = [Cell(f"Basic sigma={sigma:g}", f"basic-s{sigma:g}",
                    lambda seed, out, c=common: preset("mnist", method="basic", seed=seed, out_dir=out, **c))]
        for cap, tag in ((CAP, "capped"), (None, "faithful")):
            for lam in plan.lams:
                row.append(Cell(
                    f"ADRE_REG sigma={sigma:g} lam={lam:g} {tag}", f"adre-{tag}-s{sigma:g}-l{lam:g}",
                    lambda seed, out, c=common, lam=lam, cap=cap: preset(
                        "mnist", method="adre", k=plan.k, lam=lam, single_draw_per=True, adre_cap=cap, seed=seed, out_dir=out, **c)))
        cells[sigma] = row
    return cells


def _figure1_cells(plan: StudyPlan) -> list[Cell]:
    cells = []
    common = dict(sigma=plan.adv_sigma, epochs=plan.epochs, lr_step=plan.lr_step, k=plan.k, attack_steps=plan.adv_steps)
    for eps in plan.adv_eps:
        cells.append(Cell(f"ADRE_ADV eps={eps:g} lam={plan.adv_lam:g} capped", f"adreadv-e{eps:g}",
                          lambda seed, out, eps=eps: preset("mnist", method="adre_adv", eps=eps, lam=plan.adv_lam, adre_cap=CAP,
                                                            seed=seed, out_dir=out, **common)))
        cells.append(Cell(f"SmoothAdv eps={eps:g}", f"smoothadv-e{eps:g}",
                          lambda seed, out, eps=eps: preset("mnist", method="smoothadv", eps=eps, seed=seed, out_dir=out, **common)))
    return cells


@dataclass
class RunResult:
    """One seed of a cell: its certification rows by algorithm, or why it has none."""

    rows: dict[str, list[dict]] | None
    diverged: str | None
    seconds: float


def _run(cell: Cell, seed: int, plan: StudyPlan, root: Path, progress: bool) -> RunResult:
    """Train (or resume) one seed of a cell and certify the test subset with both algorithms."""
    out = root / cell.folder / f"seed{seed}"
    started = time.perf_counter()
    marker = out / "diverged.txt"
    if marker.is_file():
        return RunResult(None, marker.read_text().strip(), 0.0)
    settings = CertifySettings(n0=plan.n0, n=plan.n, alpha=plan.alpha, batch_size=plan.batch_size, method="both",
                               skip=plan.test_skip, max_count=plan.test_max, seed=seed)
    try:
        paths = train_and_certify(cell.config(seed, str(out)), settings, progress=progress)
    except TrainingDiverged as error:
        write_text_atomic(marker, f"{error}\n")
        return RunResult(None, str(error), time.perf_counter() - started)
    return RunResult({name: read_results(path) for name, path in paths.items()}, None, time.perf_counter() - started)


def _aggregate(name: str, results: list[RunResult], radii: tuple[float, ...], which: str = "certify") -> Row:
    """Mean and standard deviation over the seeds that did not diverge."""
    good = [summarize(r.rows[which], name, radii) for r in results if r.rows is not None]
    diverged = len(results) - len(good)
    name += f" ({diverged}/{len(results)} seeds diverged)" if diverged else ""
    if not good:
        return Row(name, np.full(len(radii) + 2, np.nan))
    return mean_row(name, good)


def _gain(name: str, results: list[RunResult], radii: tuple[float, ...]) -> Row:
    """T-CERTIFY minus CERTIFY per seed, mean and standard deviation."""
    good = [r.rows for r in results if r.rows is not None]
    differences = np.array([summary_values(summarize(rows["tcertify"], "", radii))
                            - summary_values(summarize(rows["certify"], "", radii)) for rows in good])
    spread = differences.std(axis=0, ddof=1) if len(differences) > 1 else np.zeros(differences.shape[1])
    return Row(name, differences.mean(axis=0), spread)


def run_study(plan: StudyPlan, out_dir: str | Path, progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Path]:
    """Run (or resume) the study and write its tables and figures to ``out_dir``; returns them by name."""
    root = ensure_writable_folder(out_dir)
    started = time.perf_counter()
    columns = table_columns(plan.radii)
    fine = tuple(np.round(np.arange(0.0, max(plan.radii) + PLOT_STEP / 2, PLOT_STEP), 6))
    written: dict[str, Path] = {}
    results: dict[str, list[RunResult]] = {}

    def run_cell(cell: Cell) -> list[RunResult]:
        if cell.folder not in results:
            results[cell.folder] = [_run(cell, seed, plan, root, progress) for seed in plan.seeds]
            done = results[cell.folder]
            diverged = sum(r.diverged is not None for r in done)
            log(f"{cell.label}: {len(done)} seeds, {sum(r.seconds for r in done):.0f} s" + (f", {diverged} diverged" if diverged else ""))
        return results[cell.folder]

    def table(name: str, rows: list[Row]) -> None:
        written[f"{name}.md"] = write_text_atomic(root / f"{name}.md", render_markdown(columns, rows) + "\n")
        written[f"{name}.tex"] = write_text_atomic(root / f"{name}.tex", render_latex(columns, rows) + "\n")

    def figure(name: str, curves: list[tuple[str, list[RunResult], str]], title: str) -> None:
        rows = [_aggregate(label, runs, fine, which) for label, runs, which in curves]
        count = len(fine)
        written[f"{name}.png"], written[f"{name}.pdf"] = plot_curves(
            [(row.name, np.array(fine), row.values[:count]) for row in rows], root / name, paired=True, title=title,
            spread=[row.spread[:count] if row.spread is not None else None for row in rows])

    # Table 1 analog: Basic against ADRE_REG, capped and faithful
    table1 = _table1_cells(plan)
    table("table1", [_aggregate(cell.label, run_cell(cell), plan.radii) for sigma in plan.sigmas for cell in table1[sigma]])

    # Figure 1 analog: ADRE_ADV (solid) against SmoothAdv (dashed)
    figure1 = _figure1_cells(plan)
    table("figure1", [_aggregate(cell.label, run_cell(cell), plan.radii) for cell in figure1])
    figure("figure1", [(cell.label, run_cell(cell), "certify") for cell in figure1], f"CERTIFY, sigma = {plan.adv_sigma:g}")

    # Figure 2 analog: T-CERTIFY (solid) against CERTIFY (dashed) on the same noise, one model
    # per sigma (the capped ADRE_REG of the middle lambda); and the gain on every model
    middle = plan.lams[len(plan.lams) // 2]
    chosen = [next(c for c in table1[sigma] if c.label.endswith(f"lam={middle:g} capped")) for sigma in plan.sigmas]
    curves = [(f"{cell.label}, {label}", run_cell(cell), which) for cell in chosen for label, which in (("T-CERTIFY", "tcertify"), ("CERTIFY", "certify"))]
    table("figure2", [_aggregate(label, runs, plan.radii, which) for label, runs, which in curves])
    figure("figure2", curves, "same noise samples")
    table("tcertify_gain", [_gain(f"{cell.label}: T-CERTIFY - CERTIFY", run_cell(cell), plan.radii)
                            for group in (*table1.values(), figure1) for cell in group if any(r.rows for r in run_cell(cell))])
    log(f"study finished in {time.perf_counter() - started:.0f} s (this invocation); tables and figures in {root}")
    return written
