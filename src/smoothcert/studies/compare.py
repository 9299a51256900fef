"""The field's methods side by side: Basic, SmoothAdv, ADRE_REG (capped and faithful), MACER,
Consistency, SmoothMix and CAT-RS trained at one sigma with the same data, epochs and seeds and
certified with CERTIFY on the same test examples; one table of certified accuracy and ACR (mean
± sd over seeds) with each method's training time per epoch relative to Basic.

CAT-RS trains against the smoothed predictions of a Gaussian model at sigma = 0.25 (its authors'
choice): the study trains that model (Basic, seed 0) and writes its votes on the training split
first. Every run resumes and is reused from its small files (:mod:`smoothcert.studies.finished_runs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from smoothcert.analysis.tables import Row, render_markdown, table_columns
from smoothcert.data import load_dataset
from smoothcert.storage.atomic import ensure_writable_folder, write_text_atomic
from smoothcert.jobs.evaluate import source_record
from smoothcert.jobs.votes import vote_dataset
from smoothcert.runtime.distributed import resolve_device
from smoothcert.smoothing.certification import CertifySettings
from smoothcert.smoothing.checkpoint import load_smoothed
from smoothcert.studies.finished_runs import Cell, aggregate, run_seed
from smoothcert.studies.reproduce import CIFAR_FULL, CIFAR_TRAIN, choose_plan
from smoothcert.training.config import ADRE_CAP, preset
from smoothcert.training.epoch_log import read_log
from smoothcert.training.loop import train
from smoothcert.training.methods import method_named
from smoothcert.training.soft_labels import read_votes

METHODS: dict[str, dict[str, Any]] = {
    "Basic": dict(method="basic"),
    "SmoothAdv": dict(method="smoothadv", k=2, eps=0.5, attack_steps=2),
    "ADRE_REG capped": dict(method="adre", k=4, lam=0.2, single_draw_per=True, adre_cap=ADRE_CAP),
    "ADRE_REG faithful": dict(method="adre", k=4, lam=0.2, single_draw_per=True),
    "MACER": dict(method="macer"),
    "Consistency": dict(method="consistency"),
    "SmoothMix": dict(method="smoothmix"),
    "CAT-RS": dict(method="catrs"),
}
"""Each method's settings beyond the preset; the field's methods take their authors' defaults
(:meth:`smoothcert.training.methods.base.Method.defaults`)."""
CAPPED_TWINS = {"ADRE_REG faithful": "ADRE_REG capped"}
"""A method whose runs its capped twin's stand for when the cap never bound in them
(:attr:`smoothcert.studies.finished_runs.Cell.capped_twin`)."""


@dataclass
class ComparePlan:
    """The comparison: the methods (names of :data:`METHODS`) at ``sigma`` over ``seeds``, the
    :class:`~smoothcert.training.config.TrainConfig` fields they share (``train``), how every run
    is certified, and CAT-RS's Gaussian model and votes."""

    dataset: str = "mnist"
    sigma: float = 0.5
    seeds: tuple[int, ...] = (0, 1)
    train: dict[str, Any] = field(default_factory=lambda: dict(epochs=15))
    certify: CertifySettings = field(default_factory=lambda: CertifySettings(n0=100, n=1000, alpha=0.001, batch_size=300,
                                                                             method="certify", skip=5))
    methods: tuple[str, ...] = tuple(METHODS)
    overrides: dict[str, dict[str, Any]] = field(default_factory=lambda: {"MACER": dict(lam_delay=10)})
    """Settings of a method (by name) that replace its :data:`METHODS` entry in this plan. MACER's
    lambda is deferred to the first learning-rate drop (the digits' preset drops after epoch 10):
    from the first epoch, at the preset's learning rate, it collapsed both seeds to chance
    (docs/compare.md)."""
    votes_sigma: float = 0.25
    votes_n: int = 10_000
    radii: tuple[float, ...] = tuple(round(0.25 * i, 2) for i in range(6))


QUICK = ComparePlan(train=dict(epochs=1), certify=CertifySettings(n0=50, n=200, alpha=0.001, batch_size=250, method="certify", skip=20,
                                                                  max_count=50), votes_n=50, overrides={})
"""A few minutes' version: one epoch, 50 test digits, n = 200, 50 votes per training digit, MACER
not deferred (its one epoch is before any drop)."""
CIFAR = ComparePlan(dataset="cifar10", train=CIFAR_FULL.train, certify=CIFAR_FULL.certify, votes_n=100,
                    overrides={"SmoothAdv": dict(attack_steps=CIFAR_FULL.adv_steps), "MACER": dict(lam_delay=CIFAR_FULL.train["lr_step"])})
"""The colour-image study's recipe and certification (ResNet-20, batch 100, 7 epochs, lr / 10
after epoch 5, every 8th test image, n = 1,000, CERTIFY and T-CERTIFY on the same noise;
:data:`smoothcert.studies.reproduce.CIFAR_FULL`): its Basic, ADRE_REG and SmoothAdv (one attack step)
runs at sigma 0.5 are the study's runs (the same settings and seeds), so the study's finished runs copied into the
comparison's folder are reused (their ``done.json`` records are checked, not trusted). 100
votes per training image instead of CAT-RS's 10,000 (ResNet-20 votes about 970 noisy images per
second on 2 CPU cores: 100 take 8 minutes for the 4,660 images, 10,000 would take 13 hours)."""
CIFAR_QUICK = replace(CIFAR, seeds=(0,), train=dict(CIFAR_TRAIN, epochs=1, lr_step=1), votes_n=10,
                      overrides={"SmoothAdv": CIFAR.overrides["SmoothAdv"]},
                      certify=CertifySettings(n0=50, n=200, alpha=0.001, batch_size=250, method="certify", skip=30, max_count=20))
"""The pipeline on colour images in minutes (one seed, one epoch, 20 test images, n = 200; MACER
not deferred)."""
PLANS = {("mnist", False): ComparePlan(), ("mnist", True): QUICK, ("cifar10", False): CIFAR, ("cifar10", True): CIFAR_QUICK}
"""The comparison's plans by (dataset, quick)."""


def _votes_path(plan: ComparePlan, root: Path) -> Path:
    """Where the comparison in ``root`` keeps CAT-RS's votes (beside the Gaussian model's run)."""
    return root / f"gaussian-s{plan.votes_sigma:g}" / "votes.tsv"


def _votes(plan: ComparePlan, root: Path, data_dir: str | None, progress: bool) -> Path:
    """The Gaussian model at ``votes_sigma`` and its votes on the training split (resumed)."""
    path = _votes_path(plan, root)
    out = path.parent
    size = len(load_dataset(plan.dataset, "train", data_dir))
    try:
        read_votes(path, plan.dataset, size)
        return path  # complete: the model is not needed again
    except (FileNotFoundError, ValueError):
        pass
    config = preset(plan.dataset, method="basic", sigma=plan.votes_sigma, seed=0, out_dir=str(out), data_dir=data_dir, **plan.train)
    checkpoint = train(config, resume=(out / "checkpoint.pt").is_file(), progress=progress)
    device = resolve_device(config.device)  # the device it trained on, not the CPU alone
    smoothed, _ = load_smoothed(checkpoint, device)
    metadata = source_record(checkpoint, plan.dataset, "train", device)
    return vote_dataset(smoothed, load_dataset(plan.dataset, "train", data_dir), path, plan.votes_n, plan.certify.batch_size,
                        progress=progress, metadata=metadata, resume=path.is_file())


def _folder(method: str) -> str:
    """The folder of a method's runs."""
    return method.lower().replace(" ", "-").replace("_", "")


def _seconds_per_epoch(folder: Path, seeds: tuple[int, ...], epochs: int) -> float:
    """The mean training time per epoch over the seeds' ``log.csv``."""
    times = [float(row["seconds"]) for seed in seeds for row in read_log(folder / f"seed{seed}" / "log.csv", epochs)]
    return float(np.mean(times)) if times else float("nan")


def method_cell(plan: ComparePlan, name: str, data_dir: str | None, **settings: Any) -> Cell:
    """The runs of method ``name`` in ``plan``: the dataset's preset with the plan's training
    settings, the method's (:data:`METHODS`, then the plan's overrides) and ``settings``."""
    twin = CAPPED_TWINS.get(name)
    merged = {**plan.train, **METHODS[name], **plan.overrides.get(name, {}), **settings, "sigma": plan.sigma, "data_dir": data_dir}
    return Cell(name, _folder(name), lambda seed, out: preset(plan.dataset, seed=seed, out_dir=out, **merged),
                _folder(twin) if twin in plan.methods else None)


def _needs_votes(name: str) -> bool:
    """Whether method ``name`` of :data:`METHODS` trains against smoothed predictions (CAT-RS)."""
    return method_named(METHODS[name]["method"]).soft_targets


def comparison_cells(plan: ComparePlan, root: Path, data_dir: str | None) -> list[Cell]:
    """The cells of ``plan`` with its study folder ``root`` (CAT-RS's votes file lies in it)."""
    votes = dict(catrs_votes=str(_votes_path(plan, root)))
    return [method_cell(plan, name, data_dir, **(votes if _needs_votes(name) else {})) for name in plan.methods]


def run_comparison(plan: ComparePlan, out_dir: str | Path, progress: bool = True, log: Callable[[str], None] = print,
                   data_dir: str | None = None) -> Path:
    """Run (or resume) the comparison and write ``compare.md`` to ``out_dir``; returns its path."""
    root = ensure_writable_folder(out_dir)
    if any(_needs_votes(name) for name in plan.methods):
        _votes(plan, root, data_dir, progress)
    rows, per_epoch = [], {}
    for name, cell in zip(plan.methods, comparison_cells(plan, root, data_dir)):
        runs = [run_seed(cell, seed, plan.certify, root, progress) for seed in plan.seeds]
        rows.append(aggregate(name, runs, plan.radii))
        per_epoch[name] = _seconds_per_epoch(root / cell.folder, plan.seeds, plan.train["epochs"])
        log(f"{name}: {len(runs)} seeds, {per_epoch[name]:.1f} s per epoch")
    basic = per_epoch.get("Basic", float("nan"))
    columns = [*table_columns(plan.radii), "time / epoch vs Basic"]
    table = [Row(r.name, np.append(r.values, per_epoch[name] / basic),
                 None if r.spread is None else np.append(r.spread, np.nan)) for r, name in zip(rows, plan.methods)]
    return write_text_atomic(root / "compare.md", render_markdown(columns, table) + "\n")


def comparison_plan(dataset: str, quick: bool) -> ComparePlan:
    """The full or quick plan of the comparison on ``dataset`` (``mnist`` or ``cifar10``)."""
    return choose_plan(PLANS, dataset, quick, "comparison")


