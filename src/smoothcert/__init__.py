"""smoothcert: certified l2 robustness by randomized smoothing (Cohen et al.; Feng et al.).

The package is built in floors, each importing only from those below it (docs/architecture.md):
:mod:`~smoothcert.statistics` and :mod:`~smoothcert.storage` (torch-free), :mod:`~smoothcert.analysis`
(torch-free), :mod:`~smoothcert.data`, :mod:`~smoothcert.models` and :mod:`~smoothcert.runtime`,
:mod:`~smoothcert.smoothing`, :mod:`~smoothcert.training`, :mod:`~smoothcert.jobs`,
:mod:`~smoothcert.studies`, and the command line :mod:`~smoothcert.cli`.

The statistics are imported here; the names of the floors that need torch are loaded on first use.
"""

from importlib import import_module

from smoothcert.statistics.certificates import (
    ABSTAIN,
    PAPER_GRID,
    Certificate,
    Prediction,
    certify_from_counts,
    predict_from_counts,
    t_certify_from_counts,
)
from smoothcert.statistics.grid import certify_sequentially

LAZY = {
    "SmoothedClassifier": "smoothcert.smoothing.classifier",
    "load_smoothed": "smoothcert.smoothing.checkpoint",
    "load_classifier": "smoothcert.models.checkpoint",
    "TrainConfig": "smoothcert.training.config",
    "preset": "smoothcert.training.config",
    "train": "smoothcert.training.loop",
    "regularized_risk": "smoothcert.training.objectives",
    "macer_loss": "smoothcert.training.methods.macer",
    "consistency_loss": "smoothcert.training.methods.consistency",
    "CertifySettings": "smoothcert.smoothing.certification",
    "certify_dataset": "smoothcert.jobs.evaluate",
    "predict_dataset": "smoothcert.jobs.evaluate",
    "train_and_certify": "smoothcert.jobs.pipeline",
    "analyze_files": "smoothcert.analysis.report",
    "run_demo": "smoothcert.studies.demo",
    "run_study": "smoothcert.studies.reproduce",
}
"""Public names of the floors above the statistics, and the module each lives in."""

__all__ = ["ABSTAIN", "PAPER_GRID", "Certificate", "Prediction", "certify_from_counts", "predict_from_counts",
           "t_certify_from_counts", "certify_sequentially", *LAZY]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name in LAZY:
        return getattr(import_module(LAZY[name]), name)
    raise AttributeError(f"module 'smoothcert' has no attribute {name!r}")
