"""Grid certification against fixed-n CERTIFY on a real checkpoint, in seconds and in the curve.

Each selected test image is certified twice with the same per-image seed: by CERTIFY at ``n``
(``SmoothedClassifier.certify``) and by the grid rule (``certify_grid``, ``--radii`` auto or a
list), alternating which runs first so that the machine's drift falls on both. Prints the
certified accuracy of both at every grid radius, the mean estimation samples per image and the
wall-clock ratio measured in this run.

    python benchmarks/grid_wall_clock.py --checkpoint RUN/checkpoint.pt --data-dir DIR [--n 10000] [--skip 20] [--max 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from smoothcert.data import load_dataset
from smoothcert.jobs.evaluate import selected_indices
from smoothcert.smoothing.checkpoint import load_smoothed
from smoothcert.statistics.grid import grid_radii


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-dir", default=None, help="the folder holding the checkpoint's dataset (not needed for mnist)")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--radii", default="auto")
    parser.add_argument("--skip", type=int, default=20)
    parser.add_argument("--max", type=int, default=40)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    smoothed, entries = load_smoothed(args.checkpoint)
    dataset = load_dataset(entries["dataset"], "test", args.data_dir)
    radii = (0.0, *grid_radii(args.radii, args.n, args.alpha, smoothed.sigma))
    seconds, rows = {"fixed": 0.0, "grid": 0.0}, []
    for turn, idx in enumerate(selected_indices(len(dataset), args.skip, args.max)):
        x, label = dataset[idx]
        outcome = {}
        for name in (("fixed", "grid") if turn % 2 == 0 else ("grid", "fixed")):
            start = time.perf_counter()
            if name == "fixed":
                outcome[name] = (smoothed.certify(x, 100, args.n, args.alpha, args.batch, seed=idx), args.n)
            else:
                outcome[name] = smoothed.certify_grid(x, 100, args.n, args.alpha, args.radii, args.batch, seed=idx)
            seconds[name] += time.perf_counter() - start
        rows.append((label, outcome))
    print(f"{entries['arch']} at sigma {smoothed.sigma:g}, {len(rows)} test images, n = {args.n}, alpha = {args.alpha}")
    print("| rule | " + " | ".join(f"r = {r:g}" for r in radii) + " | mean samples | seconds |")
    print("|---|" + "---|" * (len(radii) + 2))
    for name in ("fixed", "grid"):
        certified = [[cert.label == label and cert.label >= 0 and cert.radius >= r for label, o in rows for cert in [o[name][0]]]
                     for r in radii]
        curve = " | ".join(f"{np.mean(c):.3f}" for c in certified)
        print(f"| {name} | {curve} | {np.mean([o[name][1] for _, o in rows]):.0f} | {seconds[name]:.1f} |")
    print(f"wall-clock ratio fixed / grid: {seconds['fixed'] / seconds['grid']:.2f}")


if __name__ == "__main__":
    main()
