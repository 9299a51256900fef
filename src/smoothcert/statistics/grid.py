"""Grid certification: sample an input in blocks until its place on a grid of radii is decided.
Statistics only (no torch): any framework's model certifies through :func:`certify_sequentially`.

Papers report the certified accuracy at a few radii ``r_1 < ... < r_G`` (0, 0.25, 0.5, ...). An
input certified at ``r_g`` needs ``pA > p_g = Phi(r_g / sigma)``; radius 0 (``p_0 = 1/2``, a
prediction that does not abstain) is always the first level. The rule samples in blocks and
stops once the largest level it can certify is decided.

Validity (level ``alpha`` whatever the stopping time). The level is split: ``(1 - final_share)
alpha`` for sequential tests, ``final_share * alpha`` for a Clopper-Pearson bound at ``n``
(default 0.2: most inputs stop on the sequence; chosen with ``rule_out`` by replaying 3,000 rows
of two published logs, sigma 0.25 and 1.0, docs/performance.md; the prior was chosen on other
data, :data:`~smoothcert.statistics.sequential.MIXTURE_PRIOR`).

- *One-sided sequential test of each level.* For ``H_g: pA <= p_g``, the mixture over ``q > p_g``
  of the likelihood ratios ``prod_i (q / p_g)^X_i ((1 - q) / (1 - p_g))^(1 - X_i)`` with the Beta
  prior :data:`MIXTURE_PRIOR` restricted to ``(p_g, 1]`` (:func:`level_log_martingale`) has, under
  any ``pA <= p_g``, factors of mean ``pA q / p_g + (1 - pA)(1 - q)/(1 - p_g) <= 1`` (linear in
  ``pA``, equal to 1 at ``p_g``, increasing since ``q > p_g``): a non-negative supermartingale
  starting at 1. By Ville's inequality it ever reaches ``1 / level`` with probability at most
  ``level``. ``H_g`` is rejected once it does (rejections are kept). Only the lower side is
  tested, which is all a certificate needs (100 of 100 samples: ``pA > 0.9211`` at level 0.0005,
  where the two-sided sequence of :mod:`smoothcert.statistics.sequential` gives 0.9153).
- *Step-up claim.* The level claimed is the largest ``g`` such that every level ``1..g`` has been
  rejected. A wrong claim means ``pA <= p_g`` for the claimed ``g``; let ``g0 <= g`` be the first
  level with ``pA <= p_g0``: its true null ``H_g0`` was rejected, which has probability at most the
  sequential share of ``alpha``. No union bound over the levels is paid.
- *The last look.* If sampling reaches ``n``, the Clopper-Pearson bound at ``final_share * alpha``
  is computed too and the larger radius reported; by the union bound both hold together with
  probability ``1 - alpha``.

Stopping (efficiency only: it never touches validity). The rule stops when the top level is
certified, or when the next level is out of reach: even every remaining sample for the top class
could not certify it at ``n``, or the two-sided mixture sequence at ``rule_out`` excludes the
share of ``n`` the last look would need for it (the input would most likely miss it at ``n``
too).

The certificate reports, for a level certified by the sequence, that level's grid radius (the
tests say ``pA > p_g``, nothing finer), so its ACR is floored to the grid; at ``n`` the
Clopper-Pearson radius is exact as in CERTIFY.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from smoothcert.statistics import bounds
from smoothcert.statistics.certificates import ABSTAIN, Certificate
from smoothcert.statistics.sequential import MIXTURE_PRIOR, AlphaSplit, final_count_needed, mixture_log_martingale
from smoothcert.validators import POSITIVE, POSITIVE_INT, PROBABILITY


def level_log_martingale(k: ArrayLike, t: ArrayLike, p: ArrayLike, prior: tuple[float, float] = MIXTURE_PRIOR) -> NDArray[np.float64]:
    """``log M_t`` of the one-sided test of ``pA <= p`` after ``k`` of ``t`` samples (module
    docstring): ``B(a + k, b + t - k) S_p(a + k, b + t - k) / (B(a, b) S_p(a, b) p^k (1 - p)^(t - k))``,
    ``S_p`` the upper regularized incomplete beta function. Broadcasts like a ufunc."""
    a, b = prior
    k, t, p = (np.asarray(v, dtype=np.float64) for v in (k, t, p))
    with np.errstate(divide="ignore"):
        upper = np.log(special.betaincc(a + k, b + t - k, p)) - np.log(special.betaincc(a, b, p))
    return special.betaln(a + k, b + t - k) - special.betaln(a, b) + upper - special.xlogy(k, p) - special.xlog1py(t - k, -p)


def check_radii(radii: Sequence[float]) -> tuple[float, ...]:
    """The grid as a tuple, refused unless it is non-empty, finite, non-negative and increasing."""
    values = tuple(float(r) for r in radii)
    if not values or any(not np.isfinite(r) or r < 0 for r in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"radii must be a non-empty increasing list of finite non-negative radii, got {list(radii)!r}")
    return values


@dataclass(frozen=True)
class GridRule(AlphaSplit):
    """The grid rule for ``n`` samples at most, level ``alpha``, noise ``sigma`` and the radii
    ``radii`` (0 is added as the first level): the thresholds ``p_g``, and what the last look
    needs for each level."""

    n: int
    alpha: float
    sigma: float
    radii: tuple[float, ...]
    final_share: float = 0.2
    rule_out: float = 0.1

    def __post_init__(self) -> None:
        POSITIVE_INT.check("n", self.n)
        PROBABILITY.check("alpha", self.alpha)
        POSITIVE.check("sigma", self.sigma)
        PROBABILITY.check("final_share", self.final_share)
        PROBABILITY.check("rule_out", self.rule_out)
        object.__setattr__(self, "radii", tuple(sorted({0.0, *check_radii(self.radii)})))
        largest = self.sigma * float(special.ndtri(float(bounds.cp_lower(self.n, self.n, self.final_level))))
        beyond = [r for r in self.radii if r > largest]
        if beyond:
            warnings.warn(f"radii {beyond} lie beyond {largest:.4g}, the largest radius n = {self.n} samples can certify at "
                          f"sigma {self.sigma:g}; they are never certified", RuntimeWarning, stacklevel=3)

    @property
    def thresholds(self) -> NDArray[np.float64]:
        """``p_g = Phi(r_g / sigma)`` of each level."""
        return special.ndtr(np.asarray(self.radii) / self.sigma)

    @property
    def final_needed(self) -> NDArray[np.int64]:
        """The count of ``n`` the last look's Clopper-Pearson bound needs for each level (``n + 1``: none)."""
        return np.array([final_count_needed(self.n, self.final_level, float(p)) for p in self.thresholds])


class GridRun:
    """The rule on several inputs at once, in lockstep (:func:`certify_sequentially` runs one;
    the replay runs thousands): their counts, samples used, rejected levels, and which are still
    sampling."""

    def __init__(self, rule: GridRule, inputs: int, block: int = 100) -> None:
        self.rule, self.block = rule, int(POSITIVE_INT.check("block", block))
        self.thresholds, self.needed = rule.thresholds, rule.final_needed
        self.count = np.zeros(inputs, dtype=np.int64)
        self.used = np.zeros(inputs, dtype=np.int64)
        self.rejected = np.zeros((inputs, len(self.thresholds)), dtype=bool)
        self.active = np.ones(inputs, dtype=bool)

    def sizes(self) -> NDArray[np.int64]:
        """The size of the next block of each input still sampling (0 for the others)."""
        return np.where(self.active, np.minimum(self.block, self.rule.n - self.used), 0)

    @property
    def levels(self) -> NDArray[np.int64]:
        """How many levels each input has certified: every level up to it rejected (step-up)."""
        return _certified_levels(self.rejected)

    def record(self, drawn: NDArray[np.int64]) -> None:
        """Add the counts ``drawn`` of the blocks :meth:`sizes` asked for, test, and stop the
        inputs whose place on the grid is decided."""
        rows = np.flatnonzero(self.active)
        sizes = self.sizes()[rows]
        self.count[rows] += drawn[rows]
        self.used[rows] += sizes
        threshold = -np.log(self.rule.sequence_level)
        self.rejected[rows] |= level_log_martingale(self.count[rows, None], self.used[rows, None], self.thresholds) >= threshold
        level = _certified_levels(self.rejected[rows])
        done = (self.used[rows] == self.rule.n) | (level == len(self.thresholds))
        open_rows = rows[~done]
        done[~done] = self._out_of_reach(open_rows, level[~done])
        self.active[rows[done]] = False

    def _out_of_reach(self, rows: NDArray[np.int64], level: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Whether each input's next level is out of reach: neither the last look nor the
        sequential test could certify it even if every remaining sample went to the top class, or
        the two-sided sequence at ``rule_out`` excludes the share of ``n`` the last look needs."""
        n, count, used = self.rule.n, self.count[rows], self.used[rows]
        best, needed, threshold = count + n - used, self.needed[level], self.thresholds[level]
        by_sequence = level_log_martingale(best, n, threshold) >= -np.log(self.rule.sequence_level)
        share = needed / n
        unlikely = (needed <= n) & (count < share * used) & (mixture_log_martingale(count, used, share) >= -np.log(self.rule.rule_out))
        return ((best < needed) & ~by_sequence) | unlikely

    def certificate(self, row: int, top: int) -> Certificate:
        """Input ``row``'s certificate: its level's grid radius, or at ``n`` the Clopper-Pearson
        bound if that is larger."""
        rule, level = self.rule, int(self.levels[row])
        pa, radius = (float(self.thresholds[level - 1]), rule.radii[level - 1]) if level else (0.0, 0.0)
        if self.used[row] == rule.n:
            final = float(bounds.cp_lower(int(self.count[row]), rule.n, rule.final_level))
            if final > max(pa, 0.5):
                pa, radius = final, rule.sigma * float(special.ndtri(final))
        if pa <= 0.5 and not level:
            return Certificate(ABSTAIN, 0.0, pa, 1.0 - pa, rule.alpha, rule.alpha)
        return Certificate(top, max(radius, 0.0), pa, 1.0 - pa, rule.alpha, rule.alpha)


def _certified_levels(rejected: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Per row of ``rejected`` (inputs by levels), how many levels from the first are all rejected."""
    return np.argmin(np.column_stack([rejected, np.zeros(len(rejected), dtype=bool)]), axis=1)


def certify_sequentially(top: int, draw: Callable[[int], int], n: int, alpha: float, sigma: float, radii: Sequence[float],
                         block: int = 100, *, final_share: float = 0.2, rule_out: float = 0.1) -> tuple[Certificate, int]:
    """Certify one input on the grid ``radii``: ``draw(m)`` returns how many of ``m`` new noisy
    samples the base classifier gave class ``top`` (chosen beforehand on separate selection
    samples). Samples in blocks of ``block`` until the input's largest certified grid radius is
    decided, at most ``n`` samples (module docstring). Returns the certificate, valid at level
    ``alpha`` whatever the stopping time, and the samples used."""
    run = GridRun(GridRule(n, alpha, sigma, tuple(radii), final_share, rule_out), 1, block)
    while run.active[0]:
        size = int(run.sizes()[0])
        drawn = draw(size)
        if isinstance(drawn, bool) or not isinstance(drawn, (int, np.integer)) or not 0 <= drawn <= size:
            raise ValueError(f"draw({size}) must return how many of the {size} new samples went to class {top}: an integer in "
                             f"[0, {size}], got {drawn!r}")
        run.record(np.array([drawn], dtype=np.int64))
    return run.certificate(0, top), int(run.used[0])


__all__ = ["certify_sequentially", "GridRule", "GridRun", "level_log_martingale", "check_radii"]
