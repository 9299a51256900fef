"""CERTIFY with early stopping at a target radius: sample in blocks, stop once the outcome at the
target is decided. Statistics only (no torch).

Cohen et al.'s CERTIFY bounds ``pA`` with ``n`` samples fixed in advance. A user who asks only
whether an input is certified at a radius ``R`` can stop much earlier on clear inputs; but looking
at the counts repeatedly and stopping when they look good is optional stopping, which breaks a
fixed-``n`` bound. Two rules stay valid whenever they stop:

``"sequence"`` (default)
    A confidence sequence for ``pA`` that holds uniformly over all sample sizes
    (:func:`mixture_interval`, the beta-binomial mixture martingale with Ville's inequality),
    checked after every block of samples, at level ``(1 - final_share) alpha``; plus, if sampling
    reaches ``n``, the Clopper-Pearson bound at ``n`` at level ``final_share * alpha``. By the
    union bound every bound it may report holds together with probability ``1 - alpha``, whatever
    the stopping time, so any certificate it returns holds at level ``alpha``.
``"checkpoints"``
    Clopper-Pearson bounds at a few fixed checkpoints ``n / 2^(stages - 1), ..., n / 2, n``
    (:func:`checkpoint_plan`) whose levels add up to ``alpha`` (a union bound over the checkpoints).

Both stop as soon as the bound certifies the target, or as soon as the target can no longer be
certified: for ``"sequence"``, when the confidence sequence lies below the share of ``n`` samples
that the last look needs (:func:`sequence_decision`), or when even ``n`` samples all for the top
class could not certify it at the last look; for ``"checkpoints"``, when no later checkpoint could. Stopping early
for either reason never invalidates the certificate returned, which is the bound at the stopping
time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

from smoothcert.statistics import bounds
from smoothcert.statistics.certificates import Certificate, cohen_certificate

EarlyStop = Literal["sequence", "checkpoints"]
EARLY_STOPS: tuple[str, ...] = get_args(EarlyStop)

MIXTURE_PRIOR = (1.0, 0.25)
"""The Beta(a, b) mixing distribution of :func:`mixture_log_martingale`. Its mass near 1 (b < 1)
makes the sequence nearly as tight as a fixed-n Clopper-Pearson bound when every sample goes to
the top class, the common case of a well-trained base classifier. Chosen by replaying the noise of
``benchmarks/early_stopping.py`` under other priors (docs/performance.md); any prior gives a valid
sequence."""


def mixture_log_martingale(k: ArrayLike, t: ArrayLike, p: ArrayLike, prior: tuple[float, float] = MIXTURE_PRIOR) -> NDArray[np.float64]:
    """``log M_t(p)`` after ``k`` successes in ``t`` Bernoulli(``p``) trials, where

    ``M_t(p) = int_0^1 q^k (1-q)^(t-k) dBeta(q; a, b) / (p^k (1-p)^(t-k))
             = B(a + k, b + t - k) / (B(a, b) p^k (1-p)^(t-k))``.

    For each ``q`` the likelihood ratio ``q^k (1-q)^(t-k) / (p^k (1-p)^(t-k))`` is a product of
    independent factors of mean 1 under ``p``, hence a non-negative martingale starting at 1; so is
    its mixture over ``q`` (Fubini). Ville's inequality then gives
    ``P(exists t : M_t(p) >= 1 / level) <= level`` for the true ``p``. Broadcasts like a ufunc.
    """
    a, b = prior
    k, t, p = (np.asarray(v, dtype=np.float64) for v in (k, t, p))
    return special.betaln(a + k, b + t - k) - special.betaln(a, b) - special.xlogy(k, p) - special.xlog1py(t - k, -p)


def mixture_interval(k: int, t: int, level: float, prior: tuple[float, float] = MIXTURE_PRIOR) -> tuple[float, float]:
    """The confidence sequence ``C_t = {p : M_t(p) < 1 / level}`` at ``k`` of ``t``, as ``(lower, upper)``.

    Coverage: by :func:`mixture_log_martingale`, the true ``p`` lies in ``C_t`` for every ``t``
    at once with probability at least ``1 - level``, so the bound holds at any stopping time.
    Shape: ``-k log p - (t - k) log(1 - p)`` is convex with its minimum at ``k / t``, so
    ``log M_t`` is convex in ``p`` and ``C_t`` is an interval around ``k / t`` (never empty:
    ``M_t(k / t) <= 1``, the likelihood ratio being at most 1 there for every ``q``). Its ends are
    found by bracketing root search and moved outwards by the search tolerance, so that the
    returned interval contains ``C_t``.
    """
    threshold = -np.log(level)
    centre = k / t

    def excess(p: float) -> float:
        return float(mixture_log_martingale(k, t, p, prior)) - threshold

    lower, upper = 0.0, 1.0
    if k > 0 and excess(np.finfo(float).tiny) > 0:
        lower = max(0.0, optimize.brentq(excess, np.finfo(float).tiny, centre, xtol=1e-15) - 1e-14)
    if k < t and excess(1 - np.finfo(float).epsneg) > 0:
        upper = min(1.0, optimize.brentq(excess, centre, 1 - np.finfo(float).epsneg, xtol=1e-15) + 1e-14)
    return lower, upper


def _sequence_excludes(k: int, t: int, p: float, level: float) -> bool:
    """Whether ``p`` lies outside the confidence sequence at ``k`` of ``t`` (one evaluation)."""
    return bool(mixture_log_martingale(k, t, p) >= -np.log(level))


class AlphaSplit:
    """``alpha`` split between sequential looks (``(1 - final_share) alpha``) and a Clopper-Pearson
    bound at the last look (``final_share * alpha``), which hold together by the union bound."""

    alpha: float
    final_share: float

    @property
    def sequence_level(self) -> float:
        return (1 - self.final_share) * self.alpha

    @property
    def final_level(self) -> float:
        return self.final_share * self.alpha


@dataclass(frozen=True)
class SequenceTest(AlphaSplit):
    """The ``"sequence"`` rule for ``n`` estimation samples at level ``alpha``: the confidence
    sequence at ``(1 - final_share) alpha`` after every block, Clopper-Pearson at
    ``final_share * alpha`` at ``n``."""

    n: int
    alpha: float
    final_share: float = 0.5

    def __post_init__(self) -> None:
        if self.n < 1 or not 0 < self.alpha < 1 or not 0 < self.final_share < 1:
            raise ValueError(f"need n >= 1, alpha in (0, 1) and final_share in (0, 1) (the last look's Clopper-Pearson bound needs "
                             f"a level), got n={self.n}, alpha={self.alpha}, final_share={self.final_share}")


@functools.lru_cache(maxsize=256)
def final_count_needed(n: int, level: float, threshold: float) -> int:
    """The smallest count ``k`` of ``n`` with ``cp_lower(k, n, level) >= threshold`` (``n + 1``
    when none): the count the last look at ``n`` needs to certify a radius whose ``pA`` threshold
    is ``threshold``. By bisection, since ``cp_lower`` grows with ``k``."""
    if bounds.cp_lower(n, n, level) < threshold:
        return n + 1
    low, high = 0, n  # cp_lower(low) < threshold <= cp_lower(high), or low = 0 suffices
    if bounds.cp_lower(0, n, level) >= threshold:
        return 0
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if bounds.cp_lower(middle, n, level) >= threshold else (middle, high)
    return high


def sequence_decision(test: SequenceTest, top: int, top_count: int, used: int, sigma: float, target_radius: float) -> Certificate | None:
    """The ``"sequence"`` rule after ``top_count`` of the first ``used`` estimation samples went to
    ``top``: the final certificate, or None to keep sampling.

    With ``p* = Phi(R / sigma)`` the ``pA`` that certifies ``R = target_radius``, and ``q`` the
    share of ``n`` that the last look's Clopper-Pearson bound needs to certify it
    (:func:`final_count_needed`), it stops

    - certified, once the sequence excludes every ``p <= p*`` (the bound reported is at least ``p*``);
    - not certified, once the sequence excludes every ``p >= q`` (on its event of coverage
      ``pA < q``, so the count at ``n`` would most likely fall short of ``q n``), or once even
      ``n`` samples all for ``top`` could not certify ``R`` at the last look;
    - at ``n``, reporting the larger of the two lower bounds (both hold on the event of the union
      bound in the module docstring).

    Whatever the reason for stopping, the reported bound is the sequence's (or, at ``n``, the
    larger of the two), so the certificate holds at level ``alpha``.
    """
    threshold = float(special.ndtr(target_radius / sigma))
    share, level = top_count / used, test.sequence_level
    needed = final_count_needed(test.n, test.final_level, threshold)
    certified = share > threshold and _sequence_excludes(top_count, used, threshold, level)
    if used < test.n and not certified:
        best = top_count + test.n - used
        reachable = best >= needed or (best / test.n > threshold and _sequence_excludes(best, test.n, threshold, level))
        unlikely = needed <= test.n and share < needed / test.n and _sequence_excludes(top_count, used, needed / test.n, level)
        if reachable and not unlikely:
            return None
    pa, _ = mixture_interval(top_count, used, level)
    if certified:
        pa = max(pa, threshold)  # the sequence excludes every p <= threshold (it is convex in p)
    if used == test.n:
        final = float(bounds.cp_lower(top_count, test.n, test.final_level))
        if final > pa:
            return cohen_certificate(top, final, sigma, test.alpha, test.final_level)
    return cohen_certificate(top, pa, sigma, test.alpha, level)


@dataclass(frozen=True)
class CheckpointPlan:
    """Checkpoints ``m_1 < ... < m_J = n`` at which the ``"checkpoints"`` rule looks at its
    counts, and the level ``alpha_j`` of its bound at each (``sum_j alpha_j = alpha``)."""

    checkpoints: tuple[int, ...]
    levels: tuple[float, ...]


def checkpoint_plan(n: int, alpha: float, stages: int, final_share: float = 0.5, block: int = 100) -> CheckpointPlan:
    """Checkpoints at ``n / 2^(stages - 1), ..., n / 2, n`` (rounded up to multiples of ``block``,
    so that the samples up to a checkpoint are a prefix of a full-``n`` run's samples); the last
    checkpoint gets ``final_share * alpha`` and the others share the rest equally."""
    if not 0 < alpha < 1 or stages < 1 or not 0 < final_share <= 1 or n < 1:
        raise ValueError(f"need n >= 1, alpha in (0, 1), stages >= 1 and final_share in (0, 1], got n={n}, alpha={alpha}, "
                         f"stages={stages}, final_share={final_share}")
    points = sorted(({min(n, -(-(n >> k) // block) * block) for k in range(stages)} - {0}) | {n})  # no look at zero samples
    if len(points) == 1:
        return CheckpointPlan((n,), (alpha,))
    early = (1 - final_share) * alpha / (len(points) - 1)
    return CheckpointPlan(tuple(points), tuple([early] * (len(points) - 1) + [final_share * alpha]))


def checkpoint_decision(
    plan: CheckpointPlan, stage: int, top: int, top_count: int, sigma: float, target_radius: float, alpha: float,
) -> Certificate | None:
    """The ``"checkpoints"`` rule at checkpoint ``stage`` of ``plan``, after ``top_count`` of the
    first ``plan.checkpoints[stage]`` estimation samples went to ``top``: the final certificate,
    or None to keep sampling.

    It stops when ``pA_lower = cp_lower(top_count, m_j, alpha_j)`` already certifies
    ``target_radius``, or when no later checkpoint could certify it even if every remaining sample
    went to ``top``. The bounds at all checkpoints hold together with probability at least
    ``1 - sum_j alpha_j = 1 - alpha``, whatever rule picks the checkpoint at which to stop.
    """
    m, level = plan.checkpoints[stage], plan.levels[stage]
    pa = float(bounds.cp_lower(top_count, m, level))
    cert = cohen_certificate(top, pa, sigma, alpha, level)
    if cert.radius >= target_radius:
        return cert
    later = range(stage + 1, len(plan.checkpoints))
    best_later = max((float(bounds.cohen_radius(bounds.cp_lower(top_count + plan.checkpoints[k] - m, plan.checkpoints[k], plan.levels[k]), sigma))
                      for k in later), default=-np.inf)
    return None if best_later >= target_radius else cert
