"""One command per cell of the paper's Table 1, at the paper's scale (for users with GPUs).

CIFAR-10: ResNet-110, the paper's recipe, ``k = 8`` with ``l_per`` from a single noisy copy (the
Table 1 variant), sigma in {0.12, 0.25, 0.5, 1.0}, lambda in {0.1, 0.2, 0.3} (none: Basic);
certified on every 20th test image. ImageNet: ResNet-50, ``k = 1``, sigma in {0.25, 0.5, 1.0},
lambda in {0.05, 0.1}; every 100th validation image. Both: n0 = 100, n = 100,000, alpha = 0.001.

Where each setting comes from: architectures, k, lambda, sigma and the training recipes are the
paper's ("Experiments" and Table 1; momentum and weight decay on CIFAR-10 are the defaults of Cohen
et al.'s training script, the paper does not state them); n0, n and alpha are Cohen et al.'s, which
the paper says it uses; the paper does not say which test images it certified: every 20th CIFAR-10
and every 100th ImageNet image are the subsets of Cohen et al.'s and Salman et al.'s published
certification runs. Each cell is certified on the same noise samples by CERTIFY, T-CERTIFY
(corrected grid with the max-count pB bound, valid at alpha) and the paper's exact T-CERTIFY
(eq. 14's sum, grid at alpha: proven at 1.9 alpha), so that its Figure 2 can be compared.
"""

from __future__ import annotations

from typing import Any

from smoothcert.smoothing.certification import CertifySettings
from smoothcert.training.config import TrainConfig, preset

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


PAPER_LABELS = {"certify": "CERTIFY (level alpha)", "tcertify": "T-CERTIFY, corrected, max-count pB (level alpha)",
                "tcertify_paper": "T-CERTIFY as in the paper (proven level 1.9 alpha)"}
"""How ``smoothcert paper`` labels the rows of each algorithm."""


def cell_certify_settings(dataset: str) -> CertifySettings:
    """How a Table 1 cell of ``dataset`` is certified (see the module docstring)."""
    cell = TABLE1[dataset]
    return CertifySettings(n0=100, n=100_000, alpha=0.001, batch_size=cell["batch"], method="all", skip=cell["skip"])
