"""Approximate certified accuracy and its summaries, from the rows of a certification TSV (ours or
Cohen et al.'s).

For certificates ``(label_i, r_i)`` of ``m`` examples:

- approximate certified accuracy at ``r`` (the spec's "Experiments"): ``mean_i [correct_i and r_i >= r]``;
- average certified radius (ACR): ``mean_i [correct_i] r_i``;
- abstention rate: ``mean_i [label_i = ABSTAIN]``;
- a lower bound on the true certified accuracy at ``r`` (:func:`accuracy_lower_bound`), valid with
  probability ``1 - rho`` over the certification noise: ``acc(r) - k* / m``.

The first three are estimates: they count the certificates as if every one were right. The
fourth is a bound, at the level the rows record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats

from smoothcert.statistics.certificates import ABSTAIN
from smoothcert.rules import POSITIVE_INT, PROBABILITY

TABLE_RADII = tuple(round(0.25 * i, 2) for i in range(13))
"""0, 0.25, ..., 3.0: the radii of the paper's Table 1."""
DEFAULT_ALPHA = 0.001
"""The level assumed for rows that record none (Cohen et al.'s files; their code's default)."""


def certified_accuracy(rows: Sequence[dict[str, Any]], radii: Sequence[float] = TABLE_RADII) -> np.ndarray:
    """``mean_i [correct_i and radius_i >= r]`` for each ``r`` in ``radii``."""
    if not rows:
        raise ValueError("no certification rows to analyze")
    correct = np.array([bool(r["correct"]) for r in rows])
    radius = np.array([float(r["radius"]) for r in rows])
    return np.array([(correct & (radius >= r)).mean() for r in radii])


def average_certified_radius(rows: Sequence[dict[str, Any]]) -> float:
    """ACR: the radius of correctly certified examples, zero for the others, averaged over all."""
    return float(np.mean([float(r["radius"]) if r["correct"] else 0.0 for r in rows]))


def abstention_rate(rows: Sequence[dict[str, Any]]) -> float:
    return float(np.mean([int(r["predict"]) == ABSTAIN for r in rows]))


def check_levels(alpha: float, rho: float) -> None:
    """Refuse a certificate level ``alpha`` or a confidence ``rho`` outside (0, 1)."""
    PROBABILITY.check("alpha", alpha)
    PROBABILITY.check("rho", rho)


def false_certificate_allowance(m: int, alpha: float, rho: float) -> int:
    """``k*``, the smallest ``k`` with ``P(Bin(m, alpha) <= k) >= 1 - rho``.

    Computed as the smallest ``k`` with ``P(Bin(m, alpha) > k) <= rho`` (scipy's survival
    function, accurate where ``1 - cdf`` would cancel), starting from scipy's quantile and
    stepping to the exact boundary."""
    check_levels(alpha, rho)
    POSITIVE_INT.check("m (the number of examples)", m)
    k = int(stats.binom.isf(rho, m, alpha))
    while k > 0 and stats.binom.sf(k - 1, m, alpha) <= rho:
        k -= 1
    while stats.binom.sf(k, m, alpha) > rho:
        k += 1
    return k


def accuracy_lower_bound(accuracy: np.ndarray, m: int, alpha: float, rho: float) -> np.ndarray:
    """A lower bound on the true certified accuracy of ``m`` certificates, each valid at level
    ``alpha``, holding with probability at least ``1 - rho``: ``max(0, acc(r) - k* / m)`` with
    ``k*`` of :func:`false_certificate_allowance`.

    Argument. Fix the test set and a radius ``r``. Example ``i`` is *falsely counted* when its
    certificate has the right label and a radius ``>= r`` but the smoothed classifier is not
    truly certified at ``r`` around it (its label there differs, or the ball of radius ``r``
    is not constant). A falsely counted certificate is a wrong certificate, so each example is
    falsely counted with probability at most ``alpha``, and the events are independent across
    examples (each draws its own noise). A sum of independent Bernoulli variables with means at
    most ``alpha`` is stochastically dominated by ``Bin(m, alpha)`` (couple each with a
    Bernoulli(``alpha``) that is 1 whenever it is), so the number ``F`` of falsely counted
    examples satisfies ``P(F > k*) <= P(Bin(m, alpha) > k*) <= rho``. The true certified
    accuracy is at least ``acc(r) - F / m``, hence at least ``acc(r) - k* / m`` with probability
    at least ``1 - rho``.
    """
    return np.maximum(0.0, np.asarray(accuracy) - false_certificate_allowance(m, alpha, rho) / m)


def certification_level(rows: Sequence[dict[str, Any]], alpha: float | None, source: str) -> float:
    """The level of the certificates in ``rows``: the largest ``level`` they record (a file of
    mixed levels is bounded at its worst), ``alpha`` or :data:`DEFAULT_ALPHA` for rows that
    record none. An ``alpha`` that contradicts a recorded level is refused."""
    recorded = [float(row["level"]) for row in rows if row.get("level") not in (None, "")]
    if not recorded:
        return DEFAULT_ALPHA if alpha is None else alpha
    level = max(recorded)
    if alpha is not None and not math.isclose(alpha, level, rel_tol=1e-6):
        raise ValueError(f"{source} records certificates valid at level {level:g}, but alpha {alpha:g} was given; "
                         "leave --alpha out to use the recorded level")
    return level


@dataclass
class Summary:
    """What :func:`summarize` reports for one results file."""

    name: str
    radii: tuple[float, ...]
    accuracy: np.ndarray
    lower_bound: np.ndarray
    acr: float
    abstention: float
    examples: int
    alpha: float
    """The level of the certificates the lower bound assumes."""


def summarize(rows: Sequence[dict[str, Any]], name: str, radii: Sequence[float] = TABLE_RADII,
              alpha: float | None = None, rho: float = 0.001) -> Summary:
    """The estimates and the lower bound of the module docstring for one file's ``rows``, at the
    level they record (see :func:`certification_level` for ``alpha``)."""
    accuracy = certified_accuracy(rows, radii)
    level = certification_level(rows, alpha, name)
    return Summary(name=name, radii=tuple(radii), accuracy=accuracy,
                   lower_bound=accuracy_lower_bound(accuracy, len(rows), level, rho),
                   acr=average_certified_radius(rows), abstention=abstention_rate(rows), examples=len(rows), alpha=level)
