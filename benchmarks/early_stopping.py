"""Samples used and certified accuracy at the target radius: CERTIFY with early stopping
(--target-radius) by the confidence sequence (--early-stop sequence, a look after every block of
100 samples) and by the five fixed checkpoints (--early-stop checkpoints), against full-n CERTIFY,
on the same model, test digits, noise and targets (the embedded MNIST test digits).

    python benchmarks/early_stopping.py [--checkpoint PATH] [--n 10000] [--targets 0.25 0.5 1.0] [--skip 5]

Without --checkpoint it first trains the study's Basic model at sigma = 0.5 (seed 0, 8 epochs).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from smoothcert.models.checkpoint import load_classifier
from smoothcert.data import load_dataset
from smoothcert.smoothing.certification import CertifySettings
from smoothcert.jobs.evaluate import certify_dataset
from smoothcert.smoothing.classifier import SmoothedClassifier
from smoothcert.training.config import preset
from smoothcert.training.loop import train
from smoothcert.storage.tsv import read_results

RULES = ("checkpoints", "sequence")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--skip", type=int, default=5)
    parser.add_argument("--batch", type=int, default=250)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.checkpoint or train(preset("mnist", sigma=0.5, epochs=8, lr_step=6, out_dir=f"{folder}/model"), progress=False)
        model, entries = load_classifier(checkpoint)
        smoothed = SmoothedClassifier(model, 10, entries["sigma"])
        test = load_dataset(entries["dataset"], "test")
        base = dict(n0=100, n=args.n, alpha=args.alpha, batch_size=args.batch, skip=args.skip)
        started = time.perf_counter()
        full = read_results(certify_dataset(smoothed, test, Path(folder) / "full.tsv", CertifySettings(**base), progress=False)["certify"])
        full_seconds = time.perf_counter() - started
        print(f"sigma = {entries['sigma']}, n = {args.n}, alpha = {args.alpha}, {len(full)} test digits; full-n CERTIFY took {full_seconds:.0f} s")
        print("| target radius | rule | certified at target, full n | certified at target, early stopping | mean samples (of n) "
              "| fewer samples than checkpoints | time |")
        print("|---|---|---|---|---|---|---|")
        at_target = lambda rows, target: sum(r["correct"] and r["radius"] >= target for r in rows) / len(rows)
        for target in args.targets:
            samples = {}
            for rule in RULES:
                started = time.perf_counter()
                paths = certify_dataset(smoothed, test, Path(folder) / f"{rule}{target:g}.tsv",
                                        CertifySettings(**base, target_radius=target, early_stop=rule), progress=False)
                seconds = time.perf_counter() - started
                early = read_results(paths["certify"])
                samples[rule] = sum(int(r["samples"]) for r in early) / len(early)
                print(f"| {target:g} | {rule} | {at_target(full, target):.3f} | {at_target(early, target):.3f} | "
                      f"{samples[rule]:,.0f} ({samples[rule] / args.n:.1%}) | {samples['checkpoints'] / samples[rule]:.2f}x | "
                      f"{seconds:.0f} s ({seconds / full_seconds:.0%}) |")


if __name__ == "__main__":
    main()
