"""The main job: train Basic and ADRE_REG on the embedded MNIST digits at one sigma, certify
the test split with CERTIFY and T-CERTIFY on the same noise samples, and tabulate the
approximate certified accuracy side by side. Every step resumes where a previous run stopped."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from smoothcert.analysis.accuracy import Summary, summarize
from smoothcert.analysis.tables import markdown_table
from smoothcert.data import load_dataset
from smoothcert.storage.atomic import ensure_writable_folder
from smoothcert.storage.tsv import read_results
from smoothcert.jobs.pipeline import train_and_certify
from smoothcert.smoothing.certification import CertifySettings
from smoothcert.statistics.bounds import cohen_radius, cp_lower
from smoothcert.training.config import ADRE_CAP, TrainConfig, preset

TRAIN = dict(sigma=0.5, epochs=15, seed=0)
"""Both models: the ``mnist`` preset with these fields."""
ADRE = dict(method="adre", k=4, lam=0.2, single_draw_per=True, adre_cap=ADRE_CAP)
"""The ADRE_REG model, beside :data:`TRAIN`: capped, since the faithful objective diverges on the digits."""
CERTIFY = CertifySettings(n0=100, n=2000, alpha=0.001, batch_size=300, method="both")
"""Both models are certified so, on the test digits (every one, or ``max_count`` spread over the classes)."""


def radii_up_to(sigma: float, n: int, alpha: float, step: float = 0.25) -> list[float]:
    """0, step, ... up to the largest radius n samples can certify: CERTIFY's radius when all n
    samples agree, ``sigma * Phi^-1(alpha^(1/n))``."""
    largest = float(cohen_radius(cp_lower(n, n, alpha), sigma))
    return [round(step * i, 6) for i in range(int(largest / step) + 1)]


@dataclass
class DemoSettings:
    """What the demo trains and how it certifies: overrides of the ``mnist`` preset shared by both
    models (``train``) and those of the ADRE_REG model (``adre``), and the certification settings."""

    train: dict[str, Any] = field(default_factory=lambda: dict(TRAIN))
    adre: dict[str, Any] = field(default_factory=lambda: dict(ADRE))
    certify: CertifySettings = field(default_factory=lambda: replace(CERTIFY))
    out_dir: str = "runs/demo"

    def models(self) -> dict[str, TrainConfig]:
        """The two training configurations, by the name their rows carry."""
        out = Path(self.out_dir)
        cap = f", cap {self.adre['adre_cap']:g}" if self.adre.get("adre_cap") is not None else ""
        return {"Basic": preset("mnist", **{**self.train, "method": "basic", "out_dir": str(out / "basic")}),
                f"ADRE_REG lam={self.adre['lam']:g}{cap}": preset("mnist", **{**self.train, **self.adre, "out_dir": str(out / "adre")})}


def run_demo(settings: DemoSettings, progress: bool = True) -> tuple[str, list[Summary]]:
    """Returns the Markdown table and the summaries behind it. Every setting is checked before
    any training starts."""
    models = settings.models()
    certify = settings.certify.validate()
    if certify.max_count:  # the test split is ordered by class: a subset is every k-th digit, so that it spans the classes
        certify = replace(certify, skip=max(1, len(load_dataset("mnist", "test")) // certify.max_count))
    for config in models.values():
        config.validate()
    ensure_writable_folder(settings.out_dir)
    radii = radii_up_to(settings.train["sigma"], certify.n, certify.alpha)
    summaries = []
    for name, config in models.items():
        started = time.perf_counter()
        paths = train_and_certify(config, certify, progress=progress)
        for algorithm, label in (("certify", "CERTIFY"), ("tcertify", "T-CERTIFY")):
            summaries.append(summarize(read_results(paths[algorithm]), f"{name}, {label}", radii))
        if progress:
            print(f"{name}: trained and certified in {time.perf_counter() - started:.0f} s")
    return markdown_table(summaries), summaries
