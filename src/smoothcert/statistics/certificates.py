"""PREDICT, CERTIFY and T-CERTIFY computed from class counts alone (no model).

``counts0`` are the class counts of the ``n0`` selection samples and ``counts`` those of the ``n``
estimation samples, drawn independently of ``counts0`` (Cohen et al.'s CERTIFY and Algorithm 2
of the spec). Statistics only: this module never touches torch.

Validity of T-CERTIFY over a grid
---------------------------------
For a fixed split ``alpha' + (alpha - alpha') = alpha`` Proposition 1 of the spec holds at level
``alpha``. Algorithm 2 keeps the best radius over a grid of splits, which is covered only by a union
bound. The bounds are monotone in their levels, so the failure events are nested:
``{pA_lower(a') > p_A}`` grows with ``a'`` and ``{pB_upper(alpha - a') < p_B}`` grows with
``alpha - a'``, and at ``a' = alpha`` the choice ``pB = 1 - pA_lower(alpha)`` fails only when
``pA_lower(alpha)`` does. Hence the best-of-grid certificate fails with probability at most
``max(grid) + (alpha - min(grid))`` -- for the paper's grid ``{0.1, ..., 1.0} * alpha``, ``1.9 alpha``.
The default mode therefore runs the grid at ``alpha / 1.9`` (:func:`grid_level` is the
arithmetic), which holds at the level asked for; ``selection="paper"`` runs it at ``alpha`` and
states the ``1.9 alpha`` it guarantees; ``selection="first_stage"`` picks one split from
``counts0`` alone, which is independent of ``counts``, and so holds at ``alpha`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import binomtest

from smoothcert.statistics import bounds
from smoothcert.rules import POSITIVE, PROBABILITY, one_of

ABSTAIN = -1
"""The label returned when an algorithm abstains."""

PAPER_GRID = tuple(round(0.1 * i, 1) for i in range(1, 11))
"""The spec's grid of ``alpha' / alpha``: 0.1, 0.2, ..., 1.0."""

Selection = Literal["corrected", "paper", "first_stage"]
Abstention = Literal["half", "runner_up"]
PbBound = Literal["max", "sum"]
SELECTIONS: tuple[str, ...] = get_args(Selection)
ABSTENTIONS: tuple[str, ...] = get_args(Abstention)
PB_BOUNDS: tuple[str, ...] = get_args(PbBound)


@dataclass(frozen=True)
class Prediction:
    """Outcome of PREDICT: ``label`` is the top class, or :data:`ABSTAIN`."""

    label: int
    pvalue: float
    """Two-sided binomial p-value of the top count against the runner-up count."""


@dataclass(frozen=True)
class Certificate:
    """Outcome of CERTIFY or T-CERTIFY.

    When ``label != ABSTAIN``, with probability at least ``1 - level`` over the sampling, the
    smoothed classifier returns ``label`` on the whole l2 ball of radius ``radius`` around the
    input. ``pa_lower`` and ``pb_upper`` are the bounds the radius was computed from (at the
    winning split ``alpha_prime`` for T-CERTIFY); on abstention ``radius`` is 0 and the bounds
    are those of the split that came closest to certifying.
    """

    label: int
    radius: float
    pa_lower: float
    pb_upper: float
    alpha_prime: float
    level: float

    @property
    def abstained(self) -> bool:
        return self.label == ABSTAIN


def _check_level(alpha: float) -> float:
    return float(PROBABILITY.check("alpha", alpha))


def _check_sigma(sigma: float) -> float:
    return float(POSITIVE.check("sigma", sigma))


MAX_COUNT = 2**53
"""The largest sample count the bounds take: above it a count is no longer exact as a float."""


def _as_count_vector(counts: ArrayLike, name: str, num_classes: int | None = None) -> NDArray[np.int64]:
    arr = np.asarray(counts)
    if arr.ndim != 1 or arr.shape[0] < 2:
        raise ValueError(f"{name} must be a 1-d array with one count per class (at least 2 classes), got shape {arr.shape}")
    if num_classes is not None and arr.shape[0] != num_classes:
        raise ValueError(f"{name} has {arr.shape[0]} classes but counts0 has {num_classes}; both must count the same classes")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must hold whole numbers summing to at most 2**53, got {arr.tolist()!r:.200}")
    if not np.issubdtype(arr.dtype, np.integer) and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
        raise ValueError(f"{name} must hold whole numbers, got {arr!r}")
    if np.any(arr > MAX_COUNT) or sum(int(v) for v in arr.tolist()) > MAX_COUNT:
        raise ValueError(f"{name} must sum to at most 2**53 samples (counts above it are not exact in floating point), "
                         f"got {arr.tolist()!r:.200}")
    if np.any(arr < 0):
        raise ValueError(f"{name} must not be negative, got {arr.min()}")
    if arr.sum() < 1:
        raise ValueError(f"{name} must count at least one sample, got all zeros")
    return arr.astype(np.int64)


def _top(counts: NDArray[np.int64]) -> int:
    """The class with the largest count (the lowest index among ties, like ``argmax``)."""
    return int(np.argmax(counts))


def predict_from_counts(counts: ArrayLike, alpha: float) -> Prediction:
    """Cohen et al.'s PREDICT: return the top class unless the two-sided binomial test of the top
    count ``nA`` against the runner-up count ``nB`` (``H0: p = 1/2`` on ``nA + nB`` trials) has a
    p-value above ``alpha``. The returned class differs from the smoothed classifier's prediction
    with probability at most ``alpha``.
    """
    alpha = _check_level(alpha)
    counts_arr = _as_count_vector(counts, "counts")
    order = np.argsort(counts_arr, kind="stable")[::-1]
    top, runner_up = int(counts_arr[order[0]]), int(counts_arr[order[1]])
    pvalue = binomtest(top, top + runner_up, 0.5).pvalue
    label = int(order[0]) if pvalue <= alpha else ABSTAIN
    return Prediction(label=label, pvalue=float(pvalue))


def certify_from_counts(counts0: ArrayLike, counts: ArrayLike, alpha: float, sigma: float) -> Certificate:
    """Cohen et al.'s CERTIFY: the top class ``cA`` of ``counts0``, ``pA_lower`` the one-sided
    Clopper-Pearson bound on ``counts[cA]`` at level ``alpha``, ``pB_upper = 1 - pA_lower`` and
    radius ``sigma * Phi^-1(pA_lower)`` (eq. 2 with that ``pB``). Abstains unless
    ``pA_lower > 1/2``.
    """
    alpha, sigma = _check_level(alpha), _check_sigma(sigma)
    counts0_arr = _as_count_vector(counts0, "counts0")
    counts_arr = _as_count_vector(counts, "counts", num_classes=len(counts0_arr))
    top = _top(counts0_arr)
    return cohen_certificate(top, float(bounds.cp_lower(counts_arr[top], counts_arr.sum(), alpha)), sigma, alpha, alpha)


def cohen_certificate(top: int, pa: float, sigma: float, level: float, alpha_prime: float) -> Certificate:
    """CERTIFY's certificate for class ``top`` from a lower bound ``pa`` on its probability:
    radius ``sigma * Phi^-1(pa)`` with ``pB = 1 - pa``, or an abstention unless ``pa > 1/2``."""
    certified = pa > 0.5
    return Certificate(label=top if certified else ABSTAIN, radius=float(bounds.cohen_radius(pa, sigma)) if certified else 0.0,
                       pa_lower=pa, pb_upper=1.0 - pa, alpha_prime=alpha_prime, level=level)


def grid_level(grid: Sequence[float]) -> float:
    """Failure probability of the best-of-grid T-CERTIFY, per unit of the level it runs at.

    With splits ``a' = g * alpha`` for ``g`` in ``grid``, the union bound in the module docstring
    gives ``alpha * (max(grid) + 1 - min(grid))``; 1.9 for the paper's grid, 1 for ``[1.0]``
    (CERTIFY's own split).
    """
    return max(grid) + 1.0 - min(grid)


def check_grid(grid: Sequence[float]) -> tuple[float, ...]:
    """The grid of ``alpha' / alpha`` as floats, refused unless each lies in (0, 1]."""
    values = tuple(float(g) for g in grid)
    if not values or any(not 0 < g <= 1 for g in values):
        raise ValueError(f"grid must be a non-empty list of fractions alpha'/alpha in (0, 1], got {list(grid)}")
    return values


def _split_bounds(
    top_count: int, others: NDArray[np.int64], n: int, alpha: float, fractions: tuple[float, ...], pb_bound: PbBound,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """``pA_lower`` and ``pB_upper`` for each split ``alpha' = g * alpha``: ``pB_upper`` from the
    largest other count (``pb_bound="max"``, :func:`bounds.pb_upper_max`) or from eq. 14's sum
    over every other class (``"sum"``, :func:`bounds.pb_upper`), at level ``alpha - alpha'``.

    At ``g = 1`` the budget left for ``pB`` is zero and CERTIFY's ``pB = 1 - pA_lower`` is used,
    as Algorithm 2 does; it fails only when ``pA_lower`` fails.
    """
    alpha_prime = alpha * np.asarray(fractions)
    pa = bounds.cp_lower(top_count, n, alpha_prime)
    pb = 1.0 - pa
    split = alpha_prime < alpha
    if np.any(split):
        upper = bounds.pb_upper_max if pb_bound == "max" else bounds.pb_upper
        pb[split] = upper(others, n, alpha - alpha_prime[split])
    return alpha_prime, pa, pb


def _best_split(pa: NDArray, pb: NDArray, sigma: float, abstain: Abstention) -> tuple[int, bool]:
    """The split with the largest radius among those allowed to certify (or among all splits
    when none is), and whether that radius certifies (is allowed and positive)."""
    radii = bounds.radius(pa, pb, sigma)
    allowed = pa > 0.5 if abstain == "half" else pa > pb
    best = int(np.argmax(np.where(allowed, radii, -np.inf))) if np.any(allowed) else int(np.argmax(radii))
    return best, bool(allowed[best] and radii[best] > 0)


def t_certify_from_counts(
    counts0: ArrayLike,
    counts: ArrayLike,
    alpha: float,
    sigma: float,
    grid: Sequence[float] = PAPER_GRID,
    selection: Selection = "corrected",
    abstain: Abstention = "half",
    pb_bound: PbBound = "max",
) -> Certificate:
    """T-CERTIFY (Algorithm 2 of the spec): bound ``pA`` and ``pB`` separately by eq. 14 and keep
    the split of ``alpha`` that gives the largest radius ``sigma/2 (Phi^-1(pA) - Phi^-1(pB))``.

    ``grid`` holds the splits as fractions ``alpha'/alpha``. ``selection`` says how the best split
    is made valid (see the module docstring):

    - ``"corrected"`` (default): the grid runs at ``alpha / grid_level(grid)``, so the certificate
      holds with probability ``1 - alpha``;
    - ``"paper"``: the grid runs at ``alpha`` as in the paper; ``level`` reports the
      ``grid_level(grid) * alpha`` that the union bound guarantees. Never below CERTIFY on the same
      counts when 1.0 is in the grid;
    - ``"first_stage"``: the split is the one that would win if ``counts`` were
      ``counts0 * n / n0``; chosen from ``counts0`` alone, it holds at ``alpha`` exactly.

    ``abstain`` sets when a split may certify: ``"half"`` (the paper) requires ``pA_lower > 1/2``;
    ``"runner_up"`` requires only ``pA_lower > pB_upper``. The relaxation is valid: on the event
    that both bounds hold, ``p_cA >= pA_lower > pB_upper >= p_c`` for every ``c != cA``, so ``cA``
    is the smoothed classifier's class, and Cohen et al.'s Theorem 1 (which needs
    ``pA_lower >= pB_upper``, not ``pA_lower > 1/2``) gives the radius. It certifies a top class
    below 1/2 when the others share the remaining mass.

    ``pb_bound`` picks the upper bound on ``pB``: ``"max"`` (default) is the Clopper-Pearson bound
    on the largest count among the other classes, ``"sum"`` is eq. 14 of the spec. Both hold at
    their level (proofs in :func:`bounds.pb_upper_max` and :func:`bounds.pb_upper`); ``"max"`` is
    never looser. The paper-exact algorithm is ``selection="paper", pb_bound="sum"``. Both bounds
    grow as their level shrinks, so the union bound over the grid above covers either.
    """
    alpha, sigma = _check_level(alpha), _check_sigma(sigma)
    fractions = check_grid(grid)
    one_of(ABSTENTIONS).check("abstain", abstain)
    one_of(PB_BOUNDS).check("pb_bound", pb_bound)
    one_of(SELECTIONS).check("selection", selection)
    counts0_arr = _as_count_vector(counts0, "counts0")
    counts_arr = _as_count_vector(counts, "counts", num_classes=len(counts0_arr))
    top = _top(counts0_arr)
    n = int(counts_arr.sum())
    fractions, run_at, level = _selected_grid(selection, counts0_arr, top, n, alpha, sigma, fractions, abstain, pb_bound)
    alpha_prime, pa, pb = _split_bounds(int(counts_arr[top]), np.delete(counts_arr, top), n, run_at, fractions, pb_bound)
    best, certified = _best_split(pa, pb, sigma, abstain)
    return Certificate(label=top if certified else ABSTAIN,
                       radius=float(bounds.radius(pa[best], pb[best], sigma)) if certified else 0.0,
                       pa_lower=float(pa[best]), pb_upper=float(pb[best]),
                       alpha_prime=float(alpha_prime[best]), level=level)


def _selected_grid(selection: Selection, counts0: NDArray[np.int64], top: int, n: int, alpha: float, sigma: float,
                   fractions: tuple[float, ...], abstain: Abstention, pb_bound: PbBound) -> tuple[tuple[float, ...], float, float]:
    """The splits T-CERTIFY tries, the level it runs them at and the level its certificate holds
    at, for each ``selection`` of :func:`t_certify_from_counts`."""
    if selection == "corrected":
        return fractions, alpha / grid_level(fractions), alpha
    if selection == "paper":
        return fractions, alpha, min(1.0, alpha * grid_level(fractions))
    planned = np.floor(counts0 * (n / int(counts0.sum()))).astype(np.int64)
    _, planned_pa, planned_pb = _split_bounds(int(planned[top]), np.delete(planned, top), n, alpha, fractions, pb_bound)
    plan, _ = _best_split(planned_pa, planned_pb, sigma, abstain)
    return (fractions[plan],), alpha, alpha
