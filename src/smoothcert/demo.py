"""The main job: train Basic and ADRE_REG on the embedded MNIST digits at one sigma, certify
the test split with CERTIFY and T-CERTIFY on the same noise samples, and tabulate the
approximate certified accuracy side by side. Every step resumes where a previous run stopped."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from smoothcert.analyze import Summary, markdown_table, summarize
from smoothcert.data import load_dataset
from smoothcert.evaluate import CertifySettings
from smoothcert.files import ensure_writable_folder
from smoothcert.pipeline import train_and_certify
from smoothcert.stats import cohen_radius, cp_lower
from smoothcert.train import preset
from smoothcert.tsv import read_results


def radii_up_to(sigma: float, n: int, alpha: float, step: float = 0.25) -> list[float]:
    """0, step, ... up to the largest radius n samples can certify: CERTIFY's radius when all n
    samples agree, ``sigma * Phi^-1(alpha^(1/n))``."""
    largest = float(cohen_radius(cp_lower(n, n, alpha), sigma))
    return [round(step * i, 6) for i in range(int(largest / step) + 1)]


@dataclass
class DemoSettings:
    sigma: float = 0.5
    lam: float = 0.2
    k: int = 4
    adre_cap: float | None = 6.9
    epochs: int = 15
    n0: int = 100
    n: int = 2000
    alpha: float = 0.001
    batch_size: int = 300
    max_count: int | None = None
    seed: int = 0
    out_dir: str = "runs/demo"


def run_demo(settings: DemoSettings, progress: bool = True) -> tuple[str, list[Summary]]:
    """Returns the Markdown table and the summaries behind it. Every setting is checked before
    any training starts."""
    out = Path(settings.out_dir)
    if settings.max_count is not None and (isinstance(settings.max_count, bool) or settings.max_count < 1):
        raise ValueError(f"max must be a positive number of test digits, got {settings.max_count!r}")
    cap = f", cap {settings.adre_cap:g}" if settings.adre_cap is not None else ""
    models = {
        "Basic": preset("mnist", method="basic", sigma=settings.sigma, epochs=settings.epochs, seed=settings.seed,
                        out_dir=str(out / "basic")),
        f"ADRE_REG lam={settings.lam:g}{cap}": preset(
            "mnist", method="adre", sigma=settings.sigma, k=settings.k, lam=settings.lam, single_draw_per=True,
            adre_cap=settings.adre_cap, epochs=settings.epochs, seed=settings.seed, out_dir=str(out / "adre")),
    }
    # the test split is ordered by class: a subset is every k-th digit, so that it spans the classes
    skip = max(1, len(load_dataset("mnist", "test")) // settings.max_count) if settings.max_count else 1
    certify = CertifySettings(n0=settings.n0, n=settings.n, alpha=settings.alpha, batch_size=settings.batch_size, method="both",
                              skip=skip, max_count=settings.max_count, seed=settings.seed)
    for config in models.values():
        config.validate()
    certify.validate()
    ensure_writable_folder(out)
    radii = radii_up_to(settings.sigma, settings.n, settings.alpha)
    summaries = []
    for name, config in models.items():
        started = time.perf_counter()
        paths = train_and_certify(config, certify, progress=progress)
        for algorithm, label in (("certify", "CERTIFY"), ("tcertify", "T-CERTIFY")):
            summaries.append(summarize(read_results(paths[algorithm]), f"{name}, {label}", radii))
        if progress:
            print(f"{name}: trained and certified in {time.perf_counter() - started:.0f} s")
    return markdown_table(summaries), summaries
