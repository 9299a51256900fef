"""CERTIFY on one input side by side: a minimal loop, IBM ART and smoothcert, each in its own process.

Every implementation certifies the same input with the same model (weights from one seed), n0 =
100 selection and N estimation samples at the same batch size, in a fresh process (so that no
process-wide setting of one, such as smoothcert's allocator thresholds, helps another); rounds
are interleaved and the median of each is kept. Printed: noisy forward passes per second and the
ratio to the minimal loop, at batch 1000 and at each implementation's best batch.

- ``minimal``: draw noise, add the input, forward, argmax, count (what any implementation runs);
- ``art``: ``PyTorchRandomizedSmoothing.certify`` of IBM's adversarial-robustness-toolbox;
- ``smoothcert``: ``SmoothedClassifier.certify`` as installed (allocator thresholds raised);
- ``smoothcert-nofix``: the same with ``SMOOTHCERT_LEAVE_ALLOCATOR=1`` (the allocator left alone);
- ``smoothcert-bf16``: the same with ``--bf16`` (bfloat16 autocast);
- ``smoothcert-fast``: the same with ``--fast`` (BatchNorm folding, channels-last, ``torch.compile``,
  and bf16 where the CPU has bf16 units); these change the floating-point results.

ART is not a dependency of smoothcert; install it beside smoothcert in an environment of its own:

    python3 -m venv .venv-peers && .venv-peers/bin/pip install -e . adversarial-robustness-toolbox==1.20.1 statsmodels
    .venv-peers/bin/python benchmarks/compare_peers.py [--models small_cnn cifar_resnet20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

IMPLEMENTATIONS = ("minimal", "art", "smoothcert", "smoothcert-nofix", "smoothcert-bf16", "smoothcert-fast")
SHAPES = {"small_cnn": (1, 28, 28), "cifar_resnet20": (3, 32, 32), "cifar_resnet110": (3, 32, 32)}
SIGMA, N0, ALPHA, CLASSES = 0.25, 100, 0.001, 10


def build(arch: str):
    """The model (weights from seed 0, eval mode) and the input every implementation certifies."""
    import torch

    from smoothcert.models import build_model

    channels = SHAPES[arch][0]
    torch.manual_seed(0)
    model = build_model(arch, CLASSES, [0.5] * channels, [0.25] * channels).eval()
    return model, torch.rand(SHAPES[arch], generator=torch.Generator().manual_seed(1))


def certifier(implementation: str, model, x, batch: int):
    """A function certifying ``x`` with ``n`` estimation samples."""
    import torch

    if implementation == "minimal":
        def minimal(n: int) -> None:
            with torch.inference_mode():
                for num in (N0, n):
                    counts, done = torch.zeros(CLASSES, dtype=torch.long), 0
                    while done < num:
                        size = min(batch, num - done)
                        noisy = torch.randn((size, *x.shape)) * SIGMA + x
                        counts.index_add_(0, model(noisy).argmax(1), torch.ones(size, dtype=torch.long))
                        done += size
        return minimal
    if implementation == "art":
        from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

        art = PyTorchRandomizedSmoothing(model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape), nb_classes=CLASSES,
                                         clip_values=(0.0, 1.0), sample_size=N0, scale=SIGMA, alpha=ALPHA, device_type="cpu")
        return lambda n: art.certify(x[None].numpy(), n=n, batch_size=batch)
    from smoothcert.smoothing.fast import FastOptions, apply_fast_options
    from smoothcert.smoothing.classifier import SmoothedClassifier

    if implementation == "smoothcert-bf16":
        model = apply_fast_options(model, FastOptions(bf16=True))
    if implementation == "smoothcert-fast":
        model = apply_fast_options(model, FastOptions.all_for(x.device))
    smoothed = SmoothedClassifier(model, CLASSES, SIGMA)
    return lambda n: smoothed.certify(x, N0, n, ALPHA, batch_size=batch, seed=0)


def worker(implementation: str, arch: str, batch: int, n: int) -> None:
    """One measurement in this process: a warm-up certification, then a timed one."""
    import warnings

    warnings.simplefilter("ignore")
    import torch

    model, x = build(arch)
    run = certifier(implementation, model, x, batch)
    run(batch)
    started = time.perf_counter()
    run(n)
    print(json.dumps({"rate": (N0 + n) / (time.perf_counter() - started), "threads": torch.get_num_threads()}))


def measure(implementation: str, arch: str, batch: int, n: int) -> float | None:
    env = {**os.environ, **({"SMOOTHCERT_LEAVE_ALLOCATOR": "1"} if implementation == "smoothcert-nofix" else {})}
    out = subprocess.run([sys.executable, __file__, "--worker", implementation, arch, str(batch), str(n)], env=env,
                         capture_output=True, text=True)
    if out.returncode:
        print(f"  {implementation} failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["small_cnn", "cifar_resnet20"], choices=list(SHAPES))
    parser.add_argument("--implementations", nargs="+", default=list(IMPLEMENTATIONS), choices=IMPLEMENTATIONS)
    parser.add_argument("--batches", type=int, nargs="+", default=[100, 250, 1000])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 2_000], help="estimation samples, one per model")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        implementation, arch, batch, n = args.worker
        worker(implementation, arch, int(batch), int(n))
        return
    samples = dict(zip(args.models, args.n + args.n[-1:] * len(args.models)))
    rates: dict[tuple[str, str, int], list[float]] = {}
    for _ in range(args.rounds):
        for arch in args.models:
            for batch in args.batches:
                for implementation in args.implementations:
                    rate = measure(implementation, arch, batch, samples[arch])
                    if rate is not None:
                        rates.setdefault((arch, implementation, batch), []).append(rate)
    median = {key: statistics.median(values) for key, values in rates.items()}
    largest = max(args.batches)
    print(f"noisy forward passes per second (median of {args.rounds} interleaved rounds, one process each), sigma = {SIGMA}, "
          f"n0 = {N0}, {os.cpu_count()} CPUs\n")
    print(f"| model | N | implementation | at batch {largest} | ratio to minimal | best batch | at best batch | ratio to minimal's best |")
    print("|---|---|---|---|---|---|---|---|")
    for arch in args.models:
        base = median.get((arch, "minimal", largest))
        base_best = max((v for (a, i, _), v in median.items() if a == arch and i == "minimal"), default=None)
        for implementation in args.implementations:
            mine = {b: v for (a, i, b), v in median.items() if a == arch and i == implementation}
            if not mine:
                print(f"| {arch} | {samples[arch]:,} | {implementation} | not run | | | | |")
                continue
            best = max(mine, key=mine.get)
            at_largest = mine.get(largest)
            ratio = f"{at_largest / base:.2f}x" if at_largest and base else ""
            print(f"| {arch} | {samples[arch]:,} | {implementation} | {at_largest:,.0f} | {ratio} | {best} | {mine[best]:,.0f} | "
                  f"{mine[best] / base_best:.2f}x |" if at_largest else f"| {arch} | {samples[arch]:,} | {implementation} | | | {best} | "
                  f"{mine[best]:,.0f} | {mine[best] / base_best:.2f}x |")


if __name__ == "__main__":
    main()
