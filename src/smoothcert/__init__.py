"""smoothcert: certified l2 robustness by randomized smoothing (Cohen et al.; Feng et al.).

The statistics (:mod:`smoothcert.stats`, :mod:`smoothcert.certify`) never import torch;
:class:`SmoothedClassifier` is loaded, with torch, on first use.
"""

from smoothcert.certify import (
    ABSTAIN,
    PAPER_GRID,
    Certificate,
    Prediction,
    certify_from_counts,
    predict_from_counts,
    t_certify_from_counts,
)

__all__ = [
    "ABSTAIN",
    "PAPER_GRID",
    "Certificate",
    "Prediction",
    "SmoothedClassifier",
    "certify_from_counts",
    "predict_from_counts",
    "t_certify_from_counts",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name == "SmoothedClassifier":
        from smoothcert.smoothing import SmoothedClassifier

        return SmoothedClassifier
    raise AttributeError(f"module 'smoothcert' has no attribute {name!r}")
