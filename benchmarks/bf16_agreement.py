"""How much bfloat16 autocast changes a trained classifier's certificates, on the same noise.

Trains (or loads with --checkpoint) the study's Basic model on the embedded MNIST digits, then,
for every ``--skip``-th test digit, evaluates the same noisy copies in float32 and under bfloat16
autocast: the share of noisy predictions that agree, and the share of CERTIFY certificates
(n0 = 100, --n samples, alpha = 0.001) whose label or radius changes; and the forward speed of
each on this CPU.

    python benchmarks/bf16_agreement.py [--checkpoint PATH] [--n 1000] [--skip 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import torch

from smoothcert.models.checkpoint import load_classifier
from smoothcert.data import load_dataset
from smoothcert.smoothing.fast import FastOptions, apply_fast_options, native_bf16
from smoothcert.runtime.seeding import input_seed
from smoothcert.smoothing.classifier import SmoothedClassifier
from smoothcert.training.config import preset
from smoothcert.training.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--skip", type=int, default=10)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.checkpoint or train(preset("mnist", sigma=0.5, epochs=8, lr_step=6, out_dir=f"{folder}/model"), progress=False)
        model, entries = load_classifier(checkpoint)
        test = load_dataset(entries["dataset"], "test")
        classifiers = {"float32": model, "bf16": apply_fast_options(model, FastOptions(bf16=True))}
        noisy_agree = noisy_total = changed = certified = 0
        seconds = dict.fromkeys(classifiers, 0.0)
        indices = range(0, len(test), args.skip)
        for idx in indices:
            x, _ = test[idx]
            noise = torch.randn((100 + args.n, *x.shape), generator=torch.Generator().manual_seed(input_seed(0, idx))) * entries["sigma"]
            predictions = {}
            with torch.inference_mode():
                for name, classifier in classifiers.items():
                    started = time.perf_counter()
                    predictions[name] = torch.cat([classifier(x + noise[a:a + args.batch]).argmax(1) for a in range(0, len(noise), args.batch)])
                    seconds[name] += time.perf_counter() - started
            noisy_agree += int((predictions["float32"] == predictions["bf16"]).sum())
            noisy_total += len(noise)
            certs = [SmoothedClassifier(classifier, 10, entries["sigma"]).certify(x, 100, args.n, 0.001, args.batch, seed=idx)
                     for classifier in classifiers.values()]
            changed += certs[0].label != certs[1].label or certs[0].radius != certs[1].radius
            certified += certs[0].label != -1
        count = len(indices)
        print(f"{count} test digits, sigma = {entries['sigma']}, n = {args.n}; this CPU has bfloat16 units: {native_bf16(torch.device('cpu'))}")
        print(f"noisy predictions unchanged by bf16: {noisy_agree / noisy_total:.5f} ({noisy_total - noisy_agree} of {noisy_total:,} differ)")
        print(f"certificates whose label or radius changes: {changed / count:.3f} ({changed} of {count}; {certified} certified in float32)")
        print(f"forward speed, bf16 / float32: {seconds['float32'] / seconds['bf16']:.2f}x")


if __name__ == "__main__":
    main()
