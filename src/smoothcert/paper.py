"""One command per cell of the paper's Table 1, at the paper's scale (for users with GPUs).

CIFAR-10: ResNet-110, the paper's recipe, ``k = 8`` with ``l_per`` from a single noisy copy (the
Table 1 variant), sigma in {0.12, 0.25, 0.5, 1.0}, lambda in {0.1, 0.2, 0.3} (none: Basic);
certified on every 20th test image. ImageNet: ResNet-50, ``k = 1``, sigma in {0.25, 0.5, 1.0},
lambda in {0.05, 0.1}; every 100th validation image. Both: n0 = 100, n = 100,000, alpha = 0.001,
CERTIFY and T-CERTIFY on the same noise samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smoothcert.checkpoint import load_classifier
from smoothcert.data import load_dataset
from smoothcert.distributed import setup_distributed, teardown
from smoothcert.evaluate import CertifySettings, certify_dataset
from smoothcert.smoothing import SmoothedClassifier
from smoothcert.train import TrainConfig, preset, train

TABLE1 = {
    "cifar10": dict(sigmas=(0.12, 0.25, 0.5, 1.0), lams=(0.1, 0.2, 0.3), k=8, skip=20, batch=1000),
    "imagenet": dict(sigmas=(0.25, 0.5, 1.0), lams=(0.05, 0.1), k=1, skip=100, batch=400),
}


def cell_config(dataset: str, sigma: float, lam: float | None, data_dir: str, out_dir: str, **overrides: Any) -> TrainConfig:
    """The training configuration of a Table 1 cell; ``lam=None`` is the Basic row."""
    if dataset not in TABLE1:
        raise ValueError(f"Table 1 covers {', '.join(TABLE1)}, got {dataset!r}")
    cell = TABLE1[dataset]
    if sigma not in cell["sigmas"] or (lam is not None and lam not in cell["lams"]):
        raise ValueError(f"{dataset}'s Table 1 has sigma in {cell['sigmas']} and lambda in {cell['lams']}, got sigma={sigma}, lambda={lam}")
    method = dict(method="basic") if lam is None else dict(method="adre", lam=lam, k=cell["k"], single_draw_per=cell["k"] > 1)
    return preset(dataset, sigma=sigma, data_dir=data_dir, out_dir=out_dir, **{**method, **overrides})


def run_cell(config: TrainConfig, certify: CertifySettings | None = None, progress: bool = True) -> dict[str, Path]:
    """Train (or resume) the cell and certify its test split; returns the TSVs by algorithm.
    Under ``torchrun`` both steps are shared between the processes."""
    env = setup_distributed(config.device)
    checkpoint = train(config, resume=(Path(config.out_dir) / "checkpoint.pt").is_file(), progress=progress)
    if certify is None:
        cell = TABLE1[config.dataset]
        certify = CertifySettings(n0=100, n=100_000, alpha=0.001, batch_size=cell["batch"], method="both", skip=cell["skip"])
    model, entries = load_classifier(checkpoint, env.device)
    smoothed = SmoothedClassifier(model, entries["num_classes"], entries["sigma"])
    dataset = load_dataset(config.dataset, "test", config.data_dir)
    paths = certify_dataset(smoothed, dataset, Path(config.out_dir) / "certify.tsv", certify, progress=progress and env.main,
                            rank=env.rank, world=env.world)
    teardown(env)
    return paths
