"""Confidence bounds on class probabilities and the certified radii built from them.

Pure numpy/scipy: nothing here knows about torch, so every bound can be tested exhaustively
against independent computations and by simulation without a network.

Notation follows Feng et al. (the spec): a base classifier ``f`` is evaluated on ``n`` noisy
copies of an input, class ``c`` is predicted ``N_c`` times, and the smoothed classifier's class
probabilities are ``p_c = P(f(x + delta) = c)`` with ``delta ~ N(0, sigma^2 I)``.

All functions broadcast their arguments like numpy ufuncs and return ``float64`` arrays
(0-d arrays for scalar input).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats
from scipy.optimize import elementwise

from smoothcert.rules import POSITIVE, POSITIVE_INT, PROBABILITY

PB_UPPER_XATOL = 1e-12
"""Absolute accuracy of :func:`pb_upper` in ``p`` (the returned value is never below the root)."""


def _check_counts(k: NDArray, n: NDArray, name: str = "k") -> None:
    if np.any(n < 1):
        POSITIVE_INT.refuse("n", int(n.min()))
    if np.any(k < 0) or np.any(k > n):
        raise ValueError(f"{name} must be a count between 0 and n, got values in [{k.min()}, {k.max()}] with n = {n.max()}")


def _check_alpha(alpha: NDArray) -> None:
    outside = ~((alpha > 0) & (alpha < 1))
    if np.any(outside):
        PROBABILITY.refuse("alpha", float(alpha.ravel()[outside.ravel()][0]))


def _as_counts(k: ArrayLike, n: ArrayLike) -> tuple[NDArray, NDArray]:
    k_arr, n_arr = np.asarray(k), np.asarray(n)
    for name, arr in (("k", k_arr), ("n", n_arr)):
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                raise ValueError(f"{name} must hold whole numbers of samples, got {arr!r}")
    return k_arr.astype(np.int64), n_arr.astype(np.int64)


def cp_lower(k: ArrayLike, n: ArrayLike, alpha: ArrayLike) -> NDArray[np.float64]:
    """One-sided Clopper-Pearson lower confidence bound on a binomial proportion.

    ``cp_lower(k, n, alpha) = sup{p : P(Bin(n, p) >= k) <= alpha}``, the ``alpha`` quantile of
    ``Beta(k, n - k + 1)``; it is 0 when ``k = 0``. If ``K ~ Bin(n, p)`` then
    ``P(cp_lower(K, n, alpha) > p) <= alpha`` for every ``p``. This is the bound on ``p_A`` in
    eq. 14 and in Cohen et al.'s CERTIFY.
    """
    k_arr, n_arr = _as_counts(k, n)
    alpha_arr = np.asarray(alpha, dtype=np.float64)
    _check_counts(k_arr, n_arr)
    _check_alpha(alpha_arr)
    positive = np.maximum(k_arr, 1)
    bound = stats.beta.ppf(alpha_arr, positive, n_arr - positive + 1)
    return np.asarray(np.where(k_arr == 0, 0.0, bound), dtype=np.float64)


def cp_upper(k: ArrayLike, n: ArrayLike, alpha: ArrayLike) -> NDArray[np.float64]:
    """One-sided Clopper-Pearson upper confidence bound on a binomial proportion.

    ``cp_upper(k, n, alpha) = inf{p : P(Bin(n, p) <= k) <= alpha}``, the ``1 - alpha`` quantile
    of ``Beta(k + 1, n - k)``; it is 1 when ``k = n``. If ``K ~ Bin(n, p)`` then
    ``P(cp_upper(K, n, alpha) < p) <= alpha`` for every ``p``.
    """
    k_arr, n_arr = _as_counts(k, n)
    alpha_arr = np.asarray(alpha, dtype=np.float64)
    _check_counts(k_arr, n_arr)
    _check_alpha(alpha_arr)
    below_n = np.minimum(k_arr, n_arr - 1)
    bound = stats.beta.isf(alpha_arr, below_n + 1, n_arr - below_n)
    return np.asarray(np.where(k_arr == n_arr, 1.0, bound), dtype=np.float64)


def _distinct_counts(others: NDArray) -> tuple[NDArray, NDArray]:
    """Per row of ``others`` (shape ``(R, m)``): its distinct values and their multiplicities.

    Returned as two ``(R, U)`` arrays padded with weight 0, ``U`` the largest number of distinct
    values in a row. Equal counts contribute equal terms to eq. 14's sum, so the sum over ``m``
    classes becomes a weighted sum over ``U`` distinct counts (``U`` is small: most classes of a
    1000-class problem share the count 0).
    """
    rows, m = others.shape
    ordered = np.sort(others, axis=1)
    starts = np.ones_like(ordered, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = np.cumsum(starts, axis=1) - 1
    width = int(group[:, -1].max()) + 1
    flat = (np.arange(rows)[:, None] * width + group).ravel()
    weights = np.bincount(flat, minlength=rows * width).reshape(rows, width)
    values = np.zeros(rows * width, dtype=np.int64)
    values[flat] = ordered.ravel()
    return values.reshape(rows, width), weights.astype(np.float64)


def _as_others(others: ArrayLike, n: ArrayLike) -> tuple[NDArray, NDArray]:
    """The counts of the classes other than the top one (last axis) and ``n``, checked: at least
    one class, whole numbers between 0 and ``n``, adding up to at most ``n``."""
    others_arr = np.asarray(others)
    if others_arr.ndim == 0 or others_arr.shape[-1] == 0:
        raise ValueError("others must hold the counts of at least one class besides the top one, along its last axis")
    others_arr, n_arr = _as_counts(others_arr, n)
    _check_counts(others_arr, n_arr[..., None] if n_arr.ndim else n_arr, name="others")
    if np.any(others_arr.sum(axis=-1) > n_arr):
        raise ValueError("others must not add up to more than n")
    return others_arr, n_arr


def _binom_cdf(k: NDArray, n: NDArray, p: NDArray) -> NDArray:
    """``P(Bin(n, p) <= k)``, by scipy's binomial distribution (Boost's incomplete beta function:
    accurate to about 1e-14 relative in the tails, where cephes' ``special.bdtr`` is off by 1e-10)."""
    return stats.binom.cdf(k, n, p)


NEGLIGIBLE = 1e-17
"""Terms of eq. 14's sum below ``NEGLIGIBLE * alpha`` over the whole search bracket are dropped."""


def pb_upper(others: ArrayLike, n: ArrayLike, alpha: ArrayLike) -> NDArray[np.float64]:
    """Upper confidence bound on the runner-up probability ``p_B`` (eq. 14 of the spec).

    ``pb_upper(others, n, alpha) = inf{p : sum_j P(Bin(n, p) <= N_j) <= alpha}``, the sum running
    over the counts ``N_j`` of every class except the top one (zeros included), given along the
    last axis of ``others``. As in the proof of Proposition 1, if the counts are multinomial then
    ``P(pb_upper < max_j p_j) <= sum_j P(pb_upper < p_j) <= alpha``.

    The sum ``S(p)`` is continuous and decreasing from ``m = len(others)`` at ``p = 0``, so the
    bound is the root of ``S(p) = alpha``. It lies between ``lo = cp_upper(max N_j, n, alpha)``
    (the largest term alone reaches ``alpha`` there) and ``hi = cp_upper(max N_j, n, alpha / m)``
    (every term is at most ``alpha / m`` there). Equal counts give equal terms, so the sum runs
    over distinct counts with multiplicities; a term is decreasing in ``p``, so one below
    ``NEGLIGIBLE * alpha`` at ``lo`` stays below it on the bracket and is dropped (the root moves
    by far less than the tolerance). Chandrupatla's bracketing method then finds the root to
    :data:`PB_UPPER_XATOL`, and the end of the final bracket where ``S(p) <= alpha`` is returned.
    It is 1 when some ``N_j = n``, and with one other class it equals :func:`cp_upper`.

    ``others`` has shape ``(..., m)``; ``n`` and ``alpha`` broadcast against ``others.shape[:-1]``
    (for instance one row of counts and a grid of ``alpha`` values).
    """
    others_arr, n_arr = _as_others(others, n)
    alpha_arr = np.asarray(alpha, dtype=np.float64)
    _check_alpha(alpha_arr)
    row_shape = others_arr.shape[:-1]
    m = others_arr.shape[-1]
    rows = others_arr.reshape(-1, m)
    row_index, n_b, alpha_b = np.broadcast_arrays(np.arange(len(rows)).reshape(row_shape), n_arr, alpha_arr)
    row_index, n_b, alpha_b = (a.ravel() for a in (row_index, n_b, alpha_b))
    values, weights = _distinct_counts(rows)
    largest = values.max(axis=1)[row_index]

    result = np.ones(len(row_index))
    idx = np.flatnonzero(largest < n_b)
    values, weights = values[row_index[idx]], weights[row_index[idx]]
    trials, level = n_b[idx, None], alpha_b[idx]
    lo = cp_upper(largest[idx], n_b[idx], level)
    hi = cp_upper(largest[idx], n_b[idx], level / m)
    weights = np.where(weights * _binom_cdf(values, trials, lo[:, None]) > NEGLIGIBLE * level[:, None], weights, 0.0)
    kept = np.flatnonzero(weights.any(axis=0))
    values, weights = values[:, kept], weights[:, kept]

    def excess(p: NDArray, i: NDArray) -> NDArray:
        """``S(p) - alpha`` for the elements ``i`` of the batch."""
        return (weights[i] * _binom_cdf(values[i], trials[i], p[:, None])).sum(axis=1) - level[i]

    # In exact arithmetic excess(lo) >= 0 >= excess(hi); where rounding says otherwise the root
    # is that end of the bracket to within rounding.
    every = np.arange(len(idx))
    at_lo = excess(lo, every) <= 0
    at_hi = ~at_lo & (excess(hi, every) >= 0)
    found = np.where(at_lo, lo, hi)
    inner = np.flatnonzero(~(at_lo | at_hi))
    if len(inner):
        search = elementwise.find_root(
            excess, (lo[inner], hi[inner]), args=(inner,),
            # it stops once the bracket is within twice the tolerance: half of it keeps the
            # returned end within PB_UPPER_XATOL of the root
            tolerances=dict(xatol=PB_UPPER_XATOL / 2, xrtol=0.0, fatol=0.0, frtol=0.0),
        )
        if not np.all(search.success):
            raise ArithmeticError(f"pb_upper: root finding failed with status {np.unique(search.status)}")
        # the smallest end where S(p) <= alpha: the right end, or the left one when the search
        # stopped on it because S(p) - alpha evaluated to exactly 0 there
        ends, signs = np.stack(search.bracket), np.stack(search.f_bracket)
        found[inner] = np.where(signs <= 0, ends, np.inf).min(axis=0)
    result[idx] = found
    return result.reshape(np.broadcast_shapes(row_shape, n_arr.shape, alpha_arr.shape))


def pb_upper_max(others: ArrayLike, n: ArrayLike, alpha: ArrayLike) -> NDArray[np.float64]:
    """Upper confidence bound on the runner-up probability ``p_B`` from the largest other count:
    ``cp_upper(max_j N_j, n, alpha)``, the counts ``N_j`` of every class but the top one along the
    last axis of ``others`` (``n`` and ``alpha`` broadcast as in :func:`pb_upper`).

    Validity. The top class ``cA`` is fixed before ``others`` are drawn (it comes from the
    independent selection counts), so the true runner-up ``c* = argmax_{c != cA} p_c`` is one
    fixed class, and its count satisfies ``N_{c*} <= max_j N_j``. :func:`cp_upper` increases with
    its count, hence the event ``pb_upper_max < p_{c*}`` implies ``cp_upper(N_{c*}, n, alpha) < p_{c*}``,
    an event of probability at most ``alpha`` by the Clopper-Pearson argument for the single
    binomial count ``N_{c*} ~ Bin(n, p_{c*})``. So ``P(pb_upper_max < max_{c != cA} p_c) <= alpha``.

    Never looser than eq. 14: every term of its sum is non-negative and the largest one,
    ``P(Bin(n, p) <= max_j N_j)``, alone equals ``alpha`` at this bound, so eq. 14's root
    :func:`pb_upper` lies at or above it. No root finding: one Beta quantile.
    """
    others_arr, n_arr = _as_others(others, n)
    return cp_upper(others_arr.max(axis=-1), n_arr, alpha)


def radius(pa_lower: ArrayLike, pb_upper: ArrayLike, sigma: ArrayLike) -> NDArray[np.float64]:
    """The l2 radius of eq. 2, ``sigma / 2 * (Phi^-1(pA) - Phi^-1(pB))``, at bounds on pA and pB.

    By Cohen et al.'s Theorem 1 the smoothed classifier is constant on this ball whenever
    ``pA <= p_A`` and ``pB >= p_B``; the radius grows with ``pA`` and shrinks with ``pB``.
    """
    sigma_arr = _checked_sigma(sigma)
    return np.asarray(sigma_arr / 2 * (special.ndtri(pa_lower) - special.ndtri(pb_upper)), dtype=np.float64)


def cohen_radius(pa_lower: ArrayLike, sigma: ArrayLike) -> NDArray[np.float64]:
    """Cohen et al.'s radius ``sigma * Phi^-1(pA)``: eq. 2 with ``pB = 1 - pA``."""
    sigma_arr = _checked_sigma(sigma)
    return np.asarray(sigma_arr * special.ndtri(pa_lower), dtype=np.float64)


def _checked_sigma(sigma: ArrayLike) -> NDArray[np.float64]:
    """``sigma`` as an array, refused unless every value is a positive finite number."""
    sigma_arr = np.asarray(sigma, dtype=np.float64)
    bad = ~(np.isfinite(sigma_arr) & (sigma_arr > 0))
    if np.any(bad):
        POSITIVE.refuse("sigma", float(sigma_arr.ravel()[bad.ravel()][0]))
    return sigma_arr
