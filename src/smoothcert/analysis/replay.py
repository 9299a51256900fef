"""Replay a certification log on its own probabilities: how many samples the grid rule
(:mod:`smoothcert.statistics.grid`) would have needed, and whether it certifies the same curve as
fixed-n CERTIFY. Torch-free: it needs the log only.

Each row's top-class count is recovered from its radius (CERTIFY writes ``sigma *
Phi^-1(cp_lower(k, N, alpha))``, so ``k`` is the count whose bound gives the written radius back),
hence its probability ``p = k / N``. On those probabilities, with seeded binomial draws:

- *fixed n*: CERTIFY's count ``Bin(n, p)`` and its Clopper-Pearson radius;
- *grid*: the grid rule in blocks of 100 until the row's place on the grid is decided;
- *oracle*: the fewest samples ``m`` whose expected count ``m p`` passes, in one Clopper-Pearson
  test at ``alpha``, the threshold of the grid level fixed-``N`` CERTIFY gave the row; no valid
  rule can reach it, since it knows ``p``.

Rows that abstained record no count; they are replayed apart at ``p = 1/2`` and at ``p`` uniform
on [0.3, 0.5].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

from smoothcert.storage.tsv import read_results
from smoothcert.statistics.grid import GridRule, GridRun, grid_radii


def recover_counts(radii: NDArray[np.float64], sigma: float, n: int, alpha: float) -> NDArray[np.int64]:
    """The count ``k`` of ``n`` whose Clopper-Pearson radius is nearest each written radius."""
    target = special.ndtr(np.asarray(radii) / sigma)
    low, high = np.full(len(target), n // 2, dtype=np.int64), np.full(len(target), n, dtype=np.int64)
    while np.any(high - low > 1):  # bisection: cp_lower grows with k
        middle = (low + high) // 2
        below = stats.beta.ppf(alpha, middle, n - middle + 1) < target
        low, high = np.where(below, middle, low), np.where(below, high, middle)
    errors = [np.abs(stats.beta.ppf(alpha, k, n - k + 1) - target) for k in (low, high)]
    return np.where(errors[0] <= errors[1], low, high)


def _cp_radius(counts: NDArray[np.int64], n: int, alpha: float, sigma: float) -> NDArray[np.float64]:
    """CERTIFY's radius for each count of ``n`` (0 where it abstains)."""
    lower = stats.beta.ppf(alpha, np.maximum(counts, 1), n - counts + 1) * (counts > 0)
    return np.where(lower > 0.5, sigma * special.ndtri(np.clip(lower, 0.5, 1 - 1e-16)), 0.0)


def oracle_samples(p: NDArray[np.float64], thresholds: NDArray[np.float64], n: int, alpha: float) -> NDArray[np.int64]:
    """The fewest samples ``m <= n`` whose expected count ``floor(m p)`` passes ``threshold`` in
    one Clopper-Pearson test at ``alpha`` (``n`` where none does), by bisection on ``m``."""
    low, high = np.zeros(len(p), dtype=np.int64), np.full(len(p), n, dtype=np.int64)
    while np.any(high - low > 1):
        middle = (low + high) // 2
        k = np.floor(middle * p).astype(np.int64)
        passes = (k > 0) & (stats.beta.ppf(alpha, np.maximum(k, 1), middle - k + 1) > thresholds)
        low, high = np.where(passes, low, middle), np.where(passes, middle, high)
    return high


def run_grid(p: NDArray[np.float64], rule: GridRule, rng: np.random.Generator) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The grid rule on inputs of probabilities ``p``: each one's certified radius and samples used."""
    run = GridRun(rule, len(p))
    while run.active.any():
        run.record(rng.binomial(run.sizes(), p))
    certificates = [run.certificate(i, 0) for i in range(len(p))]
    radii = np.array([cert.radius if cert.label == 0 else -1.0 for cert in certificates])
    return radii, run.used.copy()


@dataclass
class Replay:
    """One log replayed: samples per input (grid, oracle), and the certified accuracy at each
    grid radius under fixed n and under the grid rule."""

    name: str
    rows: int
    abstained: int
    grid_mean: float
    grid_median: float
    oracle_mean: float
    n: int
    radii: tuple[float, ...]
    fixed_accuracy: NDArray[np.float64]
    grid_accuracy: NDArray[np.float64]
    abstained_mean_half: float
    abstained_mean_uniform: float

    @property
    def largest_loss(self) -> float:
        return float(np.max(self.fixed_accuracy - self.grid_accuracy))


def replay_log(path: str | Path, sigma: float, n: int = 100_000, alpha: float = 0.001, radii: Sequence[float] | None = None,
               seed: int = 0) -> Replay:
    """Replay the log ``path`` (see the module docstring) on the grid ``radii`` (default 0.25,
    0.5, ... up to the largest radius ``n`` samples can certify)."""
    rows = read_results(path)
    written = np.array([r["radius"] for r in rows])
    correct = np.array([r["correct"] for r in rows])
    kept = np.array([r["predict"] >= 0 for r in rows])
    grid = tuple(radii) if radii is not None else grid_radii("auto", n, alpha, sigma)
    rule = GridRule(n, alpha, sigma, grid)
    rng = np.random.default_rng(seed)
    p = recover_counts(written[kept], sigma, n, alpha) / n
    fixed = _cp_radius(rng.binomial(n, p), n, alpha, sigma)
    by_grid, used = run_grid(p, rule, rng)
    level = np.searchsorted(rule.radii, written[kept], side="right") - 1
    oracle = oracle_samples(p, rule.thresholds[np.maximum(level, 0)], n, alpha)
    accuracy = lambda radius: np.array([np.sum((radius >= r) & correct[kept]) / len(rows) for r in rule.radii])
    half = run_grid(np.full(int((~kept).sum()), 0.5), rule, rng)[1]
    uniform = run_grid(rng.uniform(0.3, 0.5, int((~kept).sum())), rule, rng)[1]
    mean = lambda values: float(np.mean(values)) if len(values) else float("nan")
    return Replay(Path(path).name, len(rows), int((~kept).sum()), mean(used), float(np.median(used)) if len(used) else float("nan"),
                  mean(oracle), n, rule.radii, accuracy(fixed), accuracy(by_grid), mean(half), mean(uniform))


def replay_table(replays: Sequence[Replay]) -> str:
    """A markdown table: per log, samples per input and the largest loss of certified accuracy."""
    lines = ["| log | rows | grid mean | grid median | speed-up over n | oracle mean | grid / oracle | largest accuracy loss | "
             "abstained (p = 1/2, p ~ U[0.3, 0.5]) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in replays:
        lines.append(f"| {r.name} | {r.rows - r.abstained} | {r.grid_mean:.0f} | {r.grid_median:.0f} | {r.n / r.grid_mean:.1f} | "
                     f"{r.oracle_mean:.0f} | {r.grid_mean / r.oracle_mean:.2f} | {r.largest_loss:+.4f} | {r.abstained}: "
                     f"{r.abstained_mean_half:.0f}, {r.abstained_mean_uniform:.0f} |")
    return "\n".join(lines) + "\n"
