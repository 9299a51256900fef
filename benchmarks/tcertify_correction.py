"""What making T-CERTIFY's best-of-grid valid at level alpha costs in radius.

Prints (1) the largest loss of the corrected grid against CERTIFY over every count where
CERTIFY's own split wins (two classes), and (2) mean radii of CERTIFY and the three T-CERTIFY
selections on simulated counts with known class probabilities, all with eq. 14's bound on pB
(``pb_bound="sum"``), so that only the selection differs (``benchmarks/pb_bound_gain.py``
measures the bound).

    python benchmarks/tcertify_correction.py [--n 100000] [--alpha 0.001] [--trials 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from smoothcert import ABSTAIN, certify_from_counts, t_certify_from_counts
from smoothcert.statistics import bounds
from smoothcert.statistics.certificates import PAPER_GRID, grid_level


def worst_case_loss(n: int, alpha: float) -> tuple[float, int, float]:
    """max over nA of Phi^-1(cp_lower(nA, n, alpha)) - Phi^-1(cp_lower(nA, n, alpha / 1.9)), in
    units of sigma: the corrected grid against CERTIFY where pB = 1 - pA_lower is the best bound.
    Also the nA where it is largest and the largest loss relative to CERTIFY's radius at radii
    of at least 0.1 sigma."""
    top = np.arange(n // 2, n + 1)
    full = bounds.cp_lower(top, n, alpha)
    corrected = bounds.cp_lower(top, n, alpha / grid_level(PAPER_GRID))
    certifies = corrected > 0.5
    full_radius = bounds.cohen_radius(full[certifies], 1.0)
    loss = full_radius - bounds.cohen_radius(corrected[certifies], 1.0)
    worst = int(np.argmax(loss))
    relative = float(np.max((loss / full_radius)[full_radius >= 0.1]))
    return float(loss[worst]), int(top[certifies][worst]), relative


def profiles(classes: int) -> dict[str, np.ndarray]:
    """Class probabilities: top p, runner-up taking a share of the rest, the rest spread."""
    out = {}
    for top in (0.55, 0.7, 0.9, 0.99):
        for share in (0.2, 0.6, 0.95):
            runner = (1 - top) * share
            rest = (1 - top - runner) / (classes - 2)
            out[f"pA={top:.2f} pB={runner:.3f}"] = np.array([top, runner] + [rest] * (classes - 2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()

    loss, at, relative = worst_case_loss(args.n, args.alpha)
    print(f"n = {args.n}, alpha = {args.alpha}: corrected T-CERTIFY loses at most {loss:.5f} sigma "
          f"against CERTIFY where CERTIFY's split is best (worst at nA = {at}); relative to CERTIFY's "
          f"radius, at most {100 * relative:.2f}% at radii of 0.1 sigma and more\n")

    rng = np.random.default_rng(0)
    modes = {
        "certify": lambda c0, c: certify_from_counts(c0, c, args.alpha, 1.0),
        "paper (level 1.9a)": lambda c0, c: t_certify_from_counts(c0, c, args.alpha, 1.0, selection="paper", pb_bound="sum"),
        "corrected": lambda c0, c: t_certify_from_counts(c0, c, args.alpha, 1.0, pb_bound="sum"),
        "first_stage": lambda c0, c: t_certify_from_counts(c0, c, args.alpha, 1.0, selection="first_stage", pb_bound="sum"),
    }
    print(f"mean certified radius / sigma over {args.trials} draws, {args.classes} classes, n0 = {args.n0}, n = {args.n}")
    print("| probabilities | " + " | ".join(modes) + " |")
    print("|---" * (len(modes) + 1) + "|")
    start = time.perf_counter()
    for name, probs in profiles(args.classes).items():
        radii = {mode: [] for mode in modes}
        for _ in range(args.trials):
            counts0, counts = rng.multinomial(args.n0, probs), rng.multinomial(args.n, probs)
            for mode, run in modes.items():
                cert = run(counts0, counts)
                radii[mode].append(cert.radius if cert.label != ABSTAIN else 0.0)
        print(f"| {name} | " + " | ".join(f"{np.mean(r):.4f}" for r in radii.values()) + " |")
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
