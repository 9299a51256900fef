"""Grid certification: sample an input in blocks until its place on a grid of radii is decided.
Statistics only (no torch): any framework's model certifies through :func:`certify_sequentially`.

Papers report the certified accuracy at a few radii ``r_1 < ... < r_G`` (0, 0.25, 0.5, ...). An
input certified at ``r_g`` needs ``pA > p_g = Phi(r_g / sigma)``; radius 0 (``p_0 = 1/2``, a
prediction that does not abstain) is always the first level. The rule samples in blocks and
stops once the largest level it can certify is decided.

Validity (level ``alpha`` whatever the stopping time). The level is split: ``(1 - final_share)
alpha`` for sequential tests, ``final_share * alpha`` for a Clopper-Pearson bound at the last
look (default 0.2: most inputs stop on the sequence). ``final_share`` and ``rule_out`` were chosen by
replaying the first 2,000 rows of two published logs (Cohen et al. at sigma 1.0, CAT-RS at 0.5;
docs/performance.md); the priors were chosen on other data.

- *One-sided sequential test of each level.* For ``H_g: pA <= p_g``, a mixture over ``q > p_g``
  of the likelihood ratios ``prod_i (q / p_g)^X_i ((1 - q) / (1 - p_g))^(1 - X_i)`` has, under
  any ``pA <= p_g``, factors of mean ``pA q / p_g + (1 - pA)(1 - q)/(1 - p_g) <= 1`` (linear in
  ``pA``, equal to 1 at ``p_g``, increasing since ``q > p_g``): a non-negative supermartingale
  starting at 1, whatever the mixing distribution on ``(p_g, 1]``. The rule mixes half with the
  Beta prior :data:`MIXTURE_PRIOR` restricted to ``(p_g, 1]`` (:func:`level_log_martingale`:
  mass near 1, where well-trained classifiers sit) and half uniformly on ``(p_g, p_(g+1)]``
  (:func:`band_log_martingale`: mass where an input certified at ``g`` and not at ``g + 1``
  sits). By Ville's inequality the mixture ever reaches ``1 / level`` with probability at most
  ``level``. ``H_g`` is rejected once it does (rejections are kept). Only the lower side is
  tested, which is all a certificate needs.
- *Step-up claim.* The level claimed is the largest ``g`` such that every level ``1..g`` has been
  rejected. A wrong claim means ``pA <= p_g`` for the claimed ``g``; let ``g0 <= g`` be the first
  level with ``pA <= p_g0``: its true null ``H_g0`` was rejected, which has probability at most the
  sequential share of ``alpha``. No union bound over the levels is paid.
- *The last look.* If sampling reaches the last look, at ``budget * n`` samples (default 1.25 n:
  the few inputs whose place is still open near ``n`` may sample on, so that the last look's
  smaller share of alpha costs no certified accuracy against CERTIFY at ``n``; replayed on
  3,000 rows of CAT-RS at sigma 0.5, the largest loss fell from 0.0067 to 0.0023 while 2.4% of
  inputs went past ``n``), the Clopper-Pearson bound at ``final_share * alpha`` is computed too
  and the larger radius reported; by the union bound both hold together with probability
  ``1 - alpha``. The look is at a fixed sample count, whatever the data.

Stopping (efficiency only: it never touches validity). The rule stops when the top level is
certified, or when the next level is out of reach: even every remaining sample for the top class
could not certify it, or reaching it is futile: the predictive probability that the count at
the last look reaches what it needs is below ``rule_out`` (:func:`futile`: a heuristic on a normal
approximation, which also leaves aside that the sequence might still certify the level; the
replay measures what it costs).

The certificate reports, for a level certified by the sequence, that level's grid radius (the
tests say ``pA > p_g``, nothing finer), so its ACR is floored to the grid; at the last look
the Clopper-Pearson radius is exact as in CERTIFY.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from smoothcert.statistics import bounds
from smoothcert.statistics.certificates import ABSTAIN, Certificate
from smoothcert.statistics.sequential import MIXTURE_PRIOR, AlphaSplit, final_count_needed
from smoothcert.rules import AT_LEAST_ONE, POSITIVE, POSITIVE_INT, PROBABILITY


def level_log_martingale(k: ArrayLike, t: ArrayLike, p: ArrayLike, prior: tuple[float, float] = MIXTURE_PRIOR) -> NDArray[np.float64]:
    """``log M_t`` of the one-sided test of ``pA <= p`` after ``k`` of ``t`` samples, mixing over
    ``q`` with the Beta ``prior`` restricted to ``(p, 1]`` (module docstring):
    ``B(a + k, b + t - k) S_p(a + k, b + t - k) / (B(a, b) S_p(a, b) p^k (1 - p)^(t - k))``,
    ``S_p`` the upper regularized incomplete beta function. Broadcasts like a ufunc."""
    a, b = prior
    k, t, p = (np.asarray(v, dtype=np.float64) for v in (k, t, p))
    with np.errstate(divide="ignore"):
        upper = np.log(special.betaincc(a + k, b + t - k, p)) - np.log(special.betaincc(a, b, p))
    return special.betaln(a + k, b + t - k) - special.betaln(a, b) + upper - _log_null(k, t, p)


def band_log_martingale(k: ArrayLike, t: ArrayLike, p: ArrayLike, top: ArrayLike) -> NDArray[np.float64]:
    """``log M_t`` of the one-sided test of ``pA <= p`` mixing over ``q`` uniform on ``(p, top]``
    (``top`` the next level's threshold): ``B(k + 1, t - k + 1) [I_top - I_p](k + 1, t - k + 1) /
    ((top - p) p^k (1 - p)^(t - k))``, ``I`` the regularized incomplete beta function. The mass
    of the band is taken from the side where it does not cancel. Broadcasts like a ufunc."""
    k, t, p, top = (np.asarray(v, dtype=np.float64) for v in (k, t, p, top))
    a, b = k + 1, t - k + 1
    above = k > top * t  # both upper tails near 1: take the difference of the lower ones
    mass = np.where(above, special.betainc(a, b, top) - special.betainc(a, b, p), special.betaincc(a, b, p) - special.betaincc(a, b, top))
    with np.errstate(divide="ignore"):
        return special.betaln(a, b) + np.log(np.maximum(mass, 0.0)) - np.log(top - p) - _log_null(k, t, p)


def _log_null(k: NDArray[np.float64], t: NDArray[np.float64], p: NDArray[np.float64]) -> NDArray[np.float64]:
    """``log(p^k (1 - p)^(t - k))``, the likelihood under the null ``pA = p``."""
    return special.xlogy(k, p) + special.xlog1py(t - k, -p)


def grid_log_martingale(k: ArrayLike, t: ArrayLike, p: ArrayLike, top: ArrayLike) -> NDArray[np.float64]:
    """The test of each grid level: the average of :func:`level_log_martingale` (mass near
    ``q = 1``, where well-trained classifiers sit) and :func:`band_log_martingale` up to the next
    level (mass just above the threshold, where an input certified at this level and not the next
    sits). An average of test supermartingales under ``pA <= p`` is one."""
    return np.logaddexp(level_log_martingale(k, t, p), band_log_martingale(k, t, p, top)) - np.log(2.0)


def check_radii(radii: Sequence[float]) -> tuple[float, ...]:
    """The grid as a tuple, refused unless it is non-empty, finite, non-negative and increasing."""
    values = tuple(float(r) for r in radii)
    if not values or any(not np.isfinite(r) or r < 0 for r in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"radii must be a non-empty increasing list of finite non-negative radii, got {list(radii)!r}")
    return values


AUTO_STEP = 0.25
"""The step of ``radii="auto"``: the grid papers report (0.25, 0.5, ...)."""


def largest_certifiable_radius(n: int, level: float, sigma: float) -> float:
    """The radius of ``n`` of ``n`` samples for the top class at ``level``: ``sigma Phi^-1(level^(1/n))``."""
    return sigma * float(special.ndtri(float(bounds.cp_lower(n, n, level))))


def parse_radii(spelling: str) -> tuple[float, ...] | str:
    """``"auto"``, or a comma-separated grid (``"0.25,0.5,0.75"``) as a checked tuple; anything
    else is refused in one line."""
    if spelling.strip() == "auto":
        return "auto"
    try:
        values = [float(part) for part in spelling.split(",")]
    except ValueError:
        raise ValueError(f"radii must be 'auto' or a comma-separated increasing list of radii such as 0.25,0.5,0.75, "
                         f"got {spelling!r}") from None
    return check_radii(values)


def grid_radii(spelling: str, n: int, alpha: float, sigma: float, final_share: float = 0.2) -> tuple[float, ...]:
    """The grid that ``spelling`` names (:func:`parse_radii`); ``"auto"`` is ``0.25, 0.5, ...`` up
    to the largest radius ``n`` samples can certify at the last look's level: the curve fixed-n
    CERTIFY can draw, so that the two compare radius for radius."""
    parsed = parse_radii(spelling)
    if parsed != "auto":
        return parsed
    largest = largest_certifiable_radius(n, final_share * alpha, sigma)
    return tuple(AUTO_STEP * i for i in range(1, int(largest / AUTO_STEP) + 1))


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
    rule_out: float = 0.05
    budget: float = 1.25

    def __post_init__(self) -> None:
        POSITIVE_INT.check("n", self.n)
        AT_LEAST_ONE.check("budget", self.budget)
        PROBABILITY.check("alpha", self.alpha)
        POSITIVE.check("sigma", self.sigma)
        PROBABILITY.check("final_share", self.final_share)
        PROBABILITY.check("rule_out", self.rule_out)
        object.__setattr__(self, "radii", tuple(sorted({0.0, *check_radii(self.radii)})))
        largest = largest_certifiable_radius(self.last_look, self.final_level, self.sigma)
        beyond = [r for r in self.radii if r > largest]
        if beyond:
            warnings.warn(f"radii {beyond} lie beyond {largest:.4g}, the largest radius {self.last_look} samples can certify at "
                          f"sigma {self.sigma:g}; they are never certified", RuntimeWarning, stacklevel=3)

    @property
    def last_look(self) -> int:
        """The samples of the last look, at most: ``budget * n`` (rounded up)."""
        return math.ceil(self.budget * self.n)

    @property
    def thresholds(self) -> NDArray[np.float64]:
        """``p_g = Phi(r_g / sigma)`` of each level."""
        return special.ndtr(np.asarray(self.radii) / self.sigma)

    @property
    def band_tops(self) -> NDArray[np.float64]:
        """The upper end of each level's band prior: the next level's threshold (1 for the last)."""
        return np.append(self.thresholds[1:], 1.0)

    @property
    def final_needed(self) -> NDArray[np.int64]:
        """The count the last look's Clopper-Pearson bound needs for each level (``last_look + 1``: none)."""
        return np.array([final_count_needed(self.last_look, self.final_level, float(p)) for p in self.thresholds])


class GridRun:
    """The rule on several inputs at once, in lockstep (:func:`certify_sequentially` runs one;
    the replay runs thousands): their counts, samples used, rejected levels, and which are still
    sampling."""

    def __init__(self, rule: GridRule, inputs: int, block: int = 100) -> None:
        self.rule, self.block = rule, int(POSITIVE_INT.check("block", block))
        self.thresholds, self.tops, self.needed = rule.thresholds, rule.band_tops, rule.final_needed
        self.count = np.zeros(inputs, dtype=np.int64)
        self.used = np.zeros(inputs, dtype=np.int64)
        self.rejected = np.zeros((inputs, len(self.thresholds)), dtype=bool)
        self.active = np.ones(inputs, dtype=bool)

    def sizes(self) -> NDArray[np.int64]:
        """The size of the next block of each input still sampling (0 for the others)."""
        return np.where(self.active, np.minimum(self.block, self.rule.last_look - self.used), 0)

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
        self.rejected[rows] |= grid_log_martingale(self.count[rows, None], self.used[rows, None], self.thresholds, self.tops) >= threshold
        level = _certified_levels(self.rejected[rows])
        done = (self.used[rows] == self.rule.last_look) | (level == len(self.thresholds))
        open_rows = rows[~done]
        done[~done] = self._out_of_reach(open_rows, level[~done])
        self.active[rows[done]] = False

    def _out_of_reach(self, rows: NDArray[np.int64], level: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Whether each input's next level is out of reach: neither the last look nor the
        sequential test could certify it even if every remaining sample went to the top class, or
        it is futile: the predictive probability that the count at the last look reaches what
        it needs is below ``rule_out`` (:func:`futile`)."""
        n, count, used = self.rule.last_look, self.count[rows], self.used[rows]
        best, needed = count + n - used, self.needed[level]
        by_sequence = grid_log_martingale(best, n, self.thresholds[level], self.tops[level]) >= -np.log(self.rule.sequence_level)
        return ((best < needed) & ~by_sequence) | futile(count, used, n, needed, self.rule.rule_out)

    def certificate(self, row: int, top: int) -> Certificate:
        """Input ``row``'s certificate: its level's grid radius, or, if it reached the last look,
        the Clopper-Pearson bound there if that is larger."""
        rule, level = self.rule, int(self.levels[row])
        pa, radius = (float(self.thresholds[level - 1]), rule.radii[level - 1]) if level else (0.0, 0.0)
        if self.used[row] == rule.last_look:
            final = float(bounds.cp_lower(int(self.count[row]), rule.last_look, rule.final_level))
            if final > max(pa, 0.5):
                pa, radius = final, rule.sigma * float(special.ndtri(final))
        if pa <= 0.5 and not level:
            return Certificate(ABSTAIN, 0.0, pa, 1.0 - pa, rule.alpha, rule.alpha)
        return Certificate(top, max(radius, 0.0), pa, 1.0 - pa, rule.alpha, rule.alpha)


def futile(count: ArrayLike, used: ArrayLike, n: int, needed: ArrayLike, rule_out: float) -> NDArray[np.bool_]:
    """Whether ``count`` of ``used`` samples make reaching ``needed`` of ``n`` unlikely: the
    normal approximation of the predictive distribution of the final count (mean ``count + r
    p_hat``, variance ``r p_hat (1 - p_hat)(1 + r / used)`` for the ``r = n - used`` samples left,
    ``p_hat = (count + 1/2) / (used + 1)``: the binomial spread of the samples to come and the
    estimate's own) gives it a probability below ``rule_out``. A stopping rule only: it decides
    where sampling ends, never what is certified."""
    count, used, needed = (np.asarray(v, dtype=np.float64) for v in (count, used, needed))
    rest, estimate = n - used, (count + 0.5) / (used + 1.0)
    spread = np.sqrt(rest * estimate * (1 - estimate) * (1 + rest / used))
    return (needed <= n) & (needed - count - rest * estimate > special.ndtri(1 - rule_out) * spread)


def _certified_levels(rejected: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Per row of ``rejected`` (inputs by levels), how many levels from the first are all rejected."""
    return np.argmin(np.column_stack([rejected, np.zeros(len(rejected), dtype=bool)]), axis=1)


def certify_sequentially(top: int, draw: Callable[[int], int], n: int, alpha: float, sigma: float, radii: Sequence[float],
                         block: int = 100, *, final_share: float = 0.2, rule_out: float = 0.05,
                         budget: float = 1.25) -> tuple[Certificate, int]:
    """Certify one input on the grid ``radii``: ``draw(m)`` returns how many of ``m`` new noisy
    samples the base classifier gave class ``top`` (chosen beforehand on separate selection
    samples). Samples in blocks of ``block`` until the input's largest certified grid radius is
    decided: ``n`` is the sample size of the fixed-n CERTIFY it stands in for, and inputs still
    open there may sample on to the last look at ``budget * n`` (module docstring). Returns the
    certificate, valid at level ``alpha`` whatever the stopping time, and the samples used."""
    run = GridRun(GridRule(n, alpha, sigma, tuple(radii), final_share, rule_out, budget), 1, block)
    while run.active[0]:
        size = int(run.sizes()[0])
        drawn = draw(size)
        if isinstance(drawn, bool) or not isinstance(drawn, (int, np.integer)) or not 0 <= drawn <= size:
            raise ValueError(f"draw({size}) must return how many of the {size} new samples went to class {top}: an integer in "
                             f"[0, {size}], got {drawn!r}")
        run.record(np.array([drawn], dtype=np.int64))
    return run.certificate(0, top), int(run.used[0])


__all__ = ["certify_sequentially", "GridRule", "GridRun", "level_log_martingale", "band_log_martingale", "grid_log_martingale", "futile", "check_radii", "parse_radii", "grid_radii",
           "largest_certifiable_radius"]
