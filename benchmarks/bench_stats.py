"""Time of one eq. 14 upper bound (pb_upper) at 1000 classes and n = 100,000, against a plain
root finding on the sum of scipy binomial CDFs, measured in one run.

    python benchmarks/bench_stats.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats as sps
from scipy.optimize import brentq

from smoothcert.statistics.bounds import pb_upper


def per_call_ms(func, repeats: int) -> float:
    func()
    start = time.perf_counter()
    for _ in range(repeats):
        func()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    n, alpha, classes = 100_000, 0.001, 1000
    rng = np.random.default_rng(0)
    cases = {
        "ImageNet-like (Dirichlet 0.05)": np.delete(counts := rng.multinomial(n, rng.dirichlet(np.full(classes, 0.05))), np.argmax(counts)),
        "one runner-up, rest zero": np.array([20_000] + [0] * (classes - 2)),
        "440 distinct counts (worst case)": np.concatenate([np.arange(440), np.zeros(classes - 441, dtype=int)]),
    }
    grid = alpha * np.linspace(0.1, 0.9, 9)
    print(f"pb_upper, {classes} classes, n = {n}, alpha = {alpha}")
    print("| counts | one call (ms) | 9-level grid (ms) | plain brentq (ms) | speed-up |")
    print("|---|---|---|---|---|")
    for name, others in cases.items():
        ours = per_call_ms(lambda: pb_upper(others, n, alpha), args.repeats)
        ours_grid = per_call_ms(lambda: pb_upper(others, n, grid), args.repeats)
        plain = per_call_ms(
            lambda: brentq(lambda p: sps.binom.cdf(others, n, p).sum() - alpha, 0.0, 1.0, xtol=1e-12), max(1, args.repeats // 5))
        print(f"| {name} | {ours:.2f} | {ours_grid:.2f} | {plain:.2f} | {plain / ours:.1f}x |")


if __name__ == "__main__":
    main()
