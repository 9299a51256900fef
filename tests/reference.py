"""Independent reference computations of the bounds, by plain root finding on scipy's binomial
distribution (no shared code with smoothcert.statistics.bounds)."""

import numpy as np
from scipy import stats
from scipy.optimize import brentq


def ref_cp_lower(k: int, n: int, alpha: float) -> float:
    """sup{p : P(Bin(n, p) >= k) <= alpha}."""
    if k == 0:
        return 0.0
    return brentq(lambda p: stats.binom.sf(k - 1, n, p) - alpha, 0.0, 1.0, xtol=1e-15, rtol=1e-15)


def ref_cp_upper(k: int, n: int, alpha: float) -> float:
    """inf{p : P(Bin(n, p) <= k) <= alpha}."""
    if k == n:
        return 1.0
    return brentq(lambda p: stats.binom.cdf(k, n, p) - alpha, 0.0, 1.0, xtol=1e-15, rtol=1e-15)


def ref_pb_upper(others, n: int, alpha: float) -> float:
    """inf{p : sum_j P(Bin(n, p) <= N_j) <= alpha}, summing every class separately."""
    others = np.asarray(others)
    if np.any(others == n):
        return 1.0
    return brentq(lambda p: sum(stats.binom.cdf(int(v), n, p) for v in others) - alpha, 0.0, 1.0, xtol=1e-15, rtol=1e-15)
