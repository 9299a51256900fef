"""Radius gained by T-CERTIFY's max-count bound on pB (``pb_bound="max"``) over eq. 14's sum
(``pb_bound="sum"``), on simulated counts with known class probabilities, and the time per call.

The top class gets pA; the remaining mass 1 - pA is spread evenly over ``s`` runner-up classes
(the other classes get none). Prints, per profile, the mean radius of each bound and the mean and
largest gain, for the paper's grid run at alpha (``selection="paper"``) and the corrected grid.

    python benchmarks/pb_bound_gain.py [--n 100000] [--alpha 0.001] [--sigma 0.5] [--trials 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from smoothcert import ABSTAIN, t_certify_from_counts


def profile(classes: int, top: float, spread_over: int) -> np.ndarray:
    probs = np.zeros(classes)
    probs[0] = top
    probs[1:1 + spread_over] = (1 - top) / spread_over
    return probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    seconds = {"max": [], "sum": []}
    print(f"sigma = {args.sigma}, n0 = {args.n0}, n = {args.n}, alpha = {args.alpha}, {args.trials} draws per profile\n")
    print("| classes | pA | runner-up mass over | selection | radius, max | radius, sum | mean gain | largest gain |")
    print("|---|---|---|---|---|---|---|---|")
    for classes, spreads in ((10, (1, 3, 9)), (1000, (1, 10, 100, 999))):
        for top in (0.55, 0.7, 0.9, 0.99):
            for spread_over in spreads:
                probs = profile(classes, top, spread_over)
                draws = [(rng.multinomial(args.n0, probs), rng.multinomial(args.n, probs)) for _ in range(args.trials)]
                for selection in ("paper", "corrected"):
                    radii = {}
                    for bound in ("max", "sum"):
                        started = time.perf_counter()
                        certs = [t_certify_from_counts(c0, c, args.alpha, args.sigma, selection=selection, pb_bound=bound) for c0, c in draws]
                        seconds[bound].append((time.perf_counter() - started) / len(draws))
                        radii[bound] = np.array([0.0 if cert.label == ABSTAIN else cert.radius for cert in certs])
                    gain = radii["max"] - radii["sum"]
                    print(f"| {classes} | {top} | {spread_over} | {selection} | {radii['max'].mean():.4f} | {radii['sum'].mean():.4f} | "
                          f"{gain.mean():.4f} | {gain.max():.4f} |")
    print(f"\nmean time per T-CERTIFY call (10 splits): max {1e3 * np.mean(seconds['max']):.2f} ms, "
          f"sum {1e3 * np.mean(seconds['sum']):.2f} ms")


if __name__ == "__main__":
    main()
