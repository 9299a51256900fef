"""One command per cell of the paper's Table 1, at the paper's scale (for users with GPUs).

CIFAR-10: ResNet-110, the paper's recipe, ``k = 8`` with ``l_per`` from a single noisy copy (the
Table 1 variant), sigma in {0.12, 0.25, 0.5, 1.0}, lambda in {0.1, 0.2, 0.3} (none: Basic);
certified on every 20th test image. ImageNet: ResNet-50, ``k = 1``, sigma in {0.25, 0.5, 1.0},
lambda in {0.05, 0.1}; every 100th validation image. Both: n0 = 100, n = 100,000, alpha = 0.001,
CERTIFY and T-CERTIFY on the same noise samples.
"""

from __future__ import annotations

from typing import Any

from smoothcert.evaluate import CertifySettings
from smoothcert.train import TrainConfig, preset

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


def cell_certify_settings(dataset: str) -> CertifySettings:
    """How the paper (and the reference code) certifies a Table 1 cell of ``dataset``."""
    cell = TABLE1[dataset]
    return CertifySettings(n0=100, n=100_000, alpha=0.001, batch_size=cell["batch"], method="both", skip=cell["skip"])
