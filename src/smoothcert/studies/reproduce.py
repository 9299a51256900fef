"""The reproduction study: analogs of the paper's Table 1 (Basic vs ADRE_REG), Figure 1
(SmoothAdv vs ADRE_ADV) and Figure 2 (T-CERTIFY vs CERTIFY on the same noise), over several
training seeds, reported as mean and standard deviation; on the embedded MNIST digits (small
CNN) or on CIFAR-10 read from a folder (ResNet-20 with BatchNorm), each in a full and a quick plan.

Every run lives in its own folder under ``out_dir``; a finished training or certification is
never recomputed, so the study resumes where it stopped. A training run whose loss stops being
finite leaves a ``diverged.txt`` and is reported as diverged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from smoothcert.analysis.accuracy import TABLE_RADII, summarize
from smoothcert.analysis.plots import PLOT_STEP, plot_curves
from smoothcert.analysis.tables import Row, render_latex, render_markdown, summary_values, table_columns
from smoothcert.smoothing.certification import CertifySettings
from smoothcert.storage.atomic import ensure_writable_folder, write_text_atomic
from smoothcert.training.config import ADRE_CAP, preset
from smoothcert.studies.finished_runs import Cell, RunResult, aggregate, run_seed

@dataclass
class StudyPlan:
    """The study's grid over the dataset's preset (:data:`smoothcert.training.config.PRESETS`):
    ``train`` holds the :class:`TrainConfig` fields every cell shares, ``certify`` how every run is
    certified (with the run's training seed as the certification seed); the rest is the grid."""

    dataset: str = "mnist"
    train: dict[str, Any] = field(default_factory=lambda: dict(epochs=8, lr_step=6))
    certify: CertifySettings = field(default_factory=lambda: CertifySettings(n0=100, n=1000, alpha=0.001, batch_size=300,
                                                                             method="both", skip=5))
    sigmas: tuple[float, ...] = (0.25, 0.5, 1.0)
    lams: tuple[float, ...] = (0.1, 0.2, 0.3)
    seeds: tuple[int, ...] = (0, 1, 2)
    k: int = 8
    """Noisy copies per example of the ADRE_REG cells."""
    adv_sigma: float = 0.5
    adv_eps: tuple[float, ...] = (0.25, 0.5)
    adv_steps: int = 2
    adv_k: int | None = None
    """Noisy copies per example of the adversarial cells (None: ``k``)."""
    adv_lam: float = 0.2
    radii: tuple[float, ...] = field(default_factory=lambda: TABLE_RADII)


FULL = StudyPlan()
QUICK = StudyPlan(train=dict(epochs=2, lr_step=2), certify=replace(FULL.certify, n=300, skip=10, max_count=60), sigmas=(0.5,),
                  lams=(0.2,), seeds=(0, 1), k=4, adv_eps=(0.5,), adv_steps=1, radii=tuple(round(0.25 * i, 2) for i in range(6)))
CIFAR_TRAIN = dict(arch="cifar_resnet20", batch_size=100, workers=0, eps_warmup=0)
"""CIFAR-10 on a CPU: the paper's recipe (SGD, lr 0.1, momentum 0.9, weight decay 1e-4, crops and
flips) with ResNet-20 instead of ResNet-110, batch 100 instead of 400 (more steps in the few
epochs a CPU affords), no attack warm-up (the epochs are too few to ramp over) and data loaded in
the training process."""
CIFAR_FULL = StudyPlan(dataset="cifar10", train=dict(CIFAR_TRAIN, epochs=7, lr_step=5), certify=replace(FULL.certify, skip=8),
                       sigmas=(0.25, 0.5), lams=(0.2,), seeds=(0, 1), k=4, adv_sigma=0.5, adv_eps=(0.5,), adv_steps=1, adv_k=2,
                       radii=tuple(round(0.25 * i, 2) for i in range(6)))
"""Sized to run within 2.5 hours on 2 CPU cores (measured per epoch on the 4,660-image subset:
Basic 19 s, ADRE_REG with k = 4 75 s, SmoothAdv with k = 2 and one attack step 69 s; ResNet-20
certifies about 970 noisy images per second): one lambda (the paper's middle value), k = 4 instead
of the paper's 8, one-step attacks with k = 2, 7 epochs, every 8th test image (117 of 932). n =
1,000 caps the certifiable radius at sigma * 2.46 (0.61 at sigma = 0.25, 1.23 at 0.5)."""
CIFAR_QUICK = StudyPlan(dataset="cifar10", train=dict(CIFAR_TRAIN, epochs=1, lr_step=1), certify=replace(FULL.certify, n=200, skip=30),
                        sigmas=(0.25,), lams=(0.2,), seeds=(0, 1), k=2, adv_sigma=0.25, adv_eps=(0.25,), adv_steps=1, adv_k=1,
                        radii=tuple(round(0.125 * i, 3) for i in range(4)))
"""Ten minutes' version on the same folder (one epoch, k = 2, 32 test images, n = 200, which caps
the radius at 0.45); shows the pipeline end to end, not a result."""
PLANS = {("mnist", False): FULL, ("mnist", True): QUICK, ("cifar10", False): CIFAR_FULL, ("cifar10", True): CIFAR_QUICK}
"""The study's plans by (dataset, quick)."""


Plan = TypeVar("Plan")


def choose_plan(plans: dict[tuple[str, bool], Plan], dataset: str, quick: bool, study: str) -> Plan:
    """The full or quick plan of ``plans`` on ``dataset``; a dataset without one is refused,
    naming ``study`` and the datasets it runs on."""
    if (dataset, quick) not in plans:
        raise ValueError(f"the {study} runs on {' or '.join(sorted({d for d, _ in plans}))}, not {dataset!r}")
    return plans[dataset, quick]


def study_plan(dataset: str, quick: bool) -> StudyPlan:
    """The full or quick plan of the study on ``dataset`` (``mnist`` or ``cifar10``)."""
    return choose_plan(PLANS, dataset, quick, "study")


def _cell(plan: StudyPlan, data_dir: str | None, label: str, folder: str, capped_twin: str | None = None, **settings: Any) -> Cell:
    """A cell trained with the dataset's preset, the plan's training settings and ``settings``."""
    common = dict(plan.train, data_dir=data_dir)
    return Cell(label, folder, lambda seed, out: preset(plan.dataset, seed=seed, out_dir=out, **{**common, **settings}), capped_twin)


def _table1_cells(plan: StudyPlan, data_dir: str | None) -> dict[float, list[Cell]]:
    cells = {}
    for sigma in plan.sigmas:
        row = [_cell(plan, data_dir, f"Basic sigma={sigma:g}", f"basic-s{sigma:g}", method="basic", sigma=sigma)]
        for cap, tag in ((ADRE_CAP, "capped"), (None, "faithful")):
            row += [_cell(plan, data_dir, f"ADRE_REG sigma={sigma:g} lam={lam:g} {tag}", f"adre-{tag}-s{sigma:g}-l{lam:g}",
                          None if cap else f"adre-capped-s{sigma:g}-l{lam:g}",
                          method="adre", sigma=sigma, k=plan.k, lam=lam, single_draw_per=True, adre_cap=cap) for lam in plan.lams]
        cells[sigma] = row
    return cells


def _figure1_cells(plan: StudyPlan, data_dir: str | None) -> list[Cell]:
    cells = []
    # one SGD step per batch for both (the spec's Algorithm 1), so that the pair differs only by
    # the ADRE term; the comparison's SmoothAdv steps per chunk as Salman et al.'s script
    common = dict(sigma=plan.adv_sigma, k=plan.adv_k or plan.k, attack_steps=plan.adv_steps, chunks=1)
    for eps in plan.adv_eps:
        cells.append(_cell(plan, data_dir, f"ADRE_ADV eps={eps:g} lam={plan.adv_lam:g} capped", f"adreadv-e{eps:g}",
                           method="adre_adv", eps=eps, lam=plan.adv_lam, adre_cap=ADRE_CAP, **common))
        cells.append(_cell(plan, data_dir, f"SmoothAdv eps={eps:g}", f"smoothadv-e{eps:g}", method="smoothadv", eps=eps, **common))
    return cells


def _gain(name: str, results: list[RunResult], radii: tuple[float, ...]) -> Row:
    """T-CERTIFY minus CERTIFY per seed, mean and standard deviation."""
    good = [r.rows for r in results if r.rows is not None]
    differences = np.array([summary_values(summarize(rows["tcertify"], "", radii))
                            - summary_values(summarize(rows["certify"], "", radii)) for rows in good])
    spread = differences.std(axis=0, ddof=1) if len(differences) > 1 else np.zeros(differences.shape[1])
    return Row(name, differences.mean(axis=0), spread)


def run_study(plan: StudyPlan, out_dir: str | Path, progress: bool = True, log: Callable[[str], None] = print,
              data_dir: str | None = None) -> dict[str, Path]:
    """Run (or resume) the study and write its tables and figures to ``out_dir``; returns them by
    name. ``data_dir`` is the dataset's folder where it is read from one (CIFAR-10)."""
    root = ensure_writable_folder(out_dir)
    started = time.perf_counter()
    columns = table_columns(plan.radii)
    fine = tuple(np.round(np.arange(0.0, max(plan.radii) + PLOT_STEP / 2, PLOT_STEP), 6))
    written: dict[str, Path] = {}
    results: dict[str, list[RunResult]] = {}

    def run_cell(cell: Cell) -> list[RunResult]:
        if cell.folder not in results:
            results[cell.folder] = [run_seed(cell, seed, plan.certify, root, progress) for seed in plan.seeds]
            done = results[cell.folder]
            diverged = sum(r.diverged is not None for r in done)
            same = sum(r.same_as is not None for r in done)
            log(f"{cell.label}: {len(done)} seeds, {sum(r.seconds for r in done):.0f} s" + (f", {diverged} diverged" if diverged else "")
                + (f", {same} the capped run (its cap never bound)" if same else ""))
        return results[cell.folder]

    def table(name: str, rows: list[Row]) -> None:
        written[f"{name}.md"] = write_text_atomic(root / f"{name}.md", render_markdown(columns, rows) + "\n")
        written[f"{name}.tex"] = write_text_atomic(root / f"{name}.tex", render_latex(columns, rows) + "\n")

    def figure(name: str, curves: list[tuple[str, list[RunResult], str]], title: str) -> None:
        rows = [aggregate(label, runs, fine, which) for label, runs, which in curves]
        count = len(fine)
        written[f"{name}.png"], written[f"{name}.pdf"] = plot_curves(
            [(row.name, np.array(fine), row.values[:count]) for row in rows], root / name, paired=True, title=title,
            spread=[row.spread[:count] if row.spread is not None else None for row in rows])

    # Table 1 analog: Basic against ADRE_REG, capped and faithful
    table1 = _table1_cells(plan, data_dir)
    table("table1", [aggregate(cell.label, run_cell(cell), plan.radii) for sigma in plan.sigmas for cell in table1[sigma]])

    # Figure 1 analog: ADRE_ADV (solid) against SmoothAdv (dashed)
    figure1 = _figure1_cells(plan, data_dir)
    table("figure1", [aggregate(cell.label, run_cell(cell), plan.radii) for cell in figure1])
    figure("figure1", [(cell.label, run_cell(cell), "certify") for cell in figure1], f"CERTIFY, sigma = {plan.adv_sigma:g}")

    # Figure 2 analog: T-CERTIFY (solid) against CERTIFY (dashed) on the same noise, one model
    # per sigma (the capped ADRE_REG of the middle lambda); and the gain on every model
    middle = plan.lams[len(plan.lams) // 2]
    chosen = [next(c for c in table1[sigma] if c.label.endswith(f"lam={middle:g} capped")) for sigma in plan.sigmas]
    curves = [(f"{cell.label}, {label}", run_cell(cell), which) for cell in chosen for label, which in (("T-CERTIFY", "tcertify"), ("CERTIFY", "certify"))]
    table("figure2", [aggregate(label, runs, plan.radii, which) for label, runs, which in curves])
    figure("figure2", curves, "same noise samples")
    table("tcertify_gain", [_gain(f"{cell.label}: T-CERTIFY - CERTIFY", run_cell(cell), plan.radii)
                            for group in (*table1.values(), figure1) for cell in group if any(r.rows for r in run_cell(cell))])
    compute = sum(r.seconds for runs in results.values() for r in runs)
    log(f"study finished in {time.perf_counter() - started:.0f} s (this invocation; the runs took {compute:.0f} s in all, "
        f"over every invocation); tables and figures in {root}")
    return written
