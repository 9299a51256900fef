"""Certification throughput against the raw batched forward pass, measured in one run.

For each model: (a) the raw loop any implementation must run -- draw noise, add the input,
forward, argmax, count, at the same batch size; (b) SmoothedClassifier.certify on single inputs;
(c) dataset-level certification (certify_dataset, TSV rows included) of several inputs. Each is
printed as a ratio to (a) on the same number of noisy samples and as noisy forward passes per
second. Then: the gain of packing several inputs into one batch when n0 + n is below the batch
size; the speed-up of each fast option; and the peak memory of certify at n = 1,000 and
n = 100,000 (it is set by the batch, not by n).

    python benchmarks/bench_certify.py [--models small_cnn cifar_resnet20 ...] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from smoothcert.smoothing.certification import CertifySettings
from smoothcert.jobs.evaluate import certify_dataset
from smoothcert.smoothing.fast import FastOptions, apply_fast_options
from smoothcert.models import build_model
from smoothcert.smoothing.classifier import SmoothedClassifier

# model: (input shape, samples per input n, batch size, inputs of the dataset-level run), sized
# for a 2-core CPU; batch sizes are multiples of the 100-sample noise block
SETTINGS = {
    "small_cnn": ((1, 28, 28), 20_000, 300, 4),
    "cifar_resnet20": ((3, 32, 32), 4_000, 200, 4),
    "cifar_resnet110": ((3, 32, 32), 1_000, 100, 2),
    "resnet50": ((3, 224, 224), 100, 100, 2),
}
SIGMA, N0 = 0.25, 100


def raw_loop(model: torch.nn.Module, x: torch.Tensor, num: int, batch: int, classes: int) -> torch.Tensor:
    """Noise, forward, argmax and count: what any implementation must do."""
    counts = torch.zeros(classes, dtype=torch.long)
    with torch.inference_mode():
        done = 0
        while done < num:
            size = min(batch, num - done)
            noisy = torch.randn((size, *x.shape)) * SIGMA + x
            counts.index_add_(0, model(noisy).argmax(1), torch.ones(size, dtype=torch.long))
            done += size
    return counts


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def median_times(funcs: dict, repeats: int) -> dict[str, float]:
    """Median time of each function over ``repeats`` rounds that run them in turn (after a
    warm-up round), so that drifts of the machine hit them alike."""
    for func in funcs.values():
        func()
    times = {name: [] for name in funcs}
    for _ in range(repeats):
        for name, func in funcs.items():
            times[name].append(timed(func))
    return {name: statistics.median(values) for name, values in times.items()}


def bench_model(arch: str, repeats: int) -> None:
    shape, n, batch, inputs = SETTINGS[arch]
    torch.manual_seed(0)
    model = build_model(arch, 10, [0.5] * shape[0], [0.25] * shape[0]).eval()
    smoothed = SmoothedClassifier(model, 10, SIGMA)
    x = torch.rand(shape)
    data = TensorDataset(torch.rand(inputs, *shape), torch.zeros(inputs, dtype=torch.long))
    samples = N0 + n

    def dataset_level() -> None:
        with tempfile.TemporaryDirectory() as folder:
            certify_dataset(smoothed, data, Path(folder) / "c.tsv", CertifySettings(n0=N0, n=n, batch_size=batch), progress=False)

    times = median_times({
        "raw": lambda: raw_loop(model, x, samples, batch, 10),
        "single": lambda: smoothed.certify(x, N0, n, 0.001, batch_size=batch, seed=0),
        "many": dataset_level,
    }, repeats)
    raw, single, many = times["raw"], times["single"], times["many"] / inputs
    print(f"| {arch} | {batch} | {samples} | {samples / raw:,.0f} | 1.000 | {single / raw:.3f} | {many / raw:.3f} |")


def bench_packing(repeats: int) -> None:
    """n0 + n below the batch: inputs packed into shared forward passes against one at a time."""
    print("\npacking several inputs into one forward pass (16 inputs, n0 = 100, n = 100)")
    print("| model | batch | one input at a time (s) | packed (s) | gain |")
    print("|---|---|---|---|---|")
    for arch, batch in (("small_cnn", 1000), ("cifar_resnet20", 1000)):
        shape = SETTINGS[arch][0]
        torch.manual_seed(0)
        model = build_model(arch, 10, [0.5] * shape[0], [0.25] * shape[0]).eval()
        smoothed = SmoothedClassifier(model, 10, SIGMA)
        inputs, phases = torch.rand(16, *shape), (100, 100)
        gens = lambda: [torch.Generator().manual_seed(i) for i in range(16)]
        times = median_times({
            "alone": lambda: [smoothed.count_phases(inputs[i:i + 1], phases, batch, [g]) for i, g in enumerate(gens())],
            "packed": lambda: smoothed.count_phases(inputs, phases, batch, gens()),
        }, repeats)
        print(f"| {arch} | {batch} | {times['alone']:.3f} | {times['packed']:.3f} | {times['alone'] / times['packed']:.2f}x |")


def bench_fast(arch: str, repeats: int) -> None:
    shape, _, batch, _ = SETTINGS[arch]
    torch.manual_seed(0)
    model = build_model(arch, 10, [0.5] * shape[0], [0.25] * shape[0]).eval()
    x = torch.rand(batch, *shape)

    variants = {"plain": model}
    for name, options in [("fold_bn", FastOptions(fold_bn=True)), ("channels_last", FastOptions(channels_last=True)),
                          ("compile", FastOptions(compile=True)), ("all", FastOptions(True, True, True))]:
        variants[name] = apply_fast_options(model, options)
    with torch.inference_mode():
        times = median_times({name: (lambda m=module: m(x)) for name, module in variants.items()}, repeats)
    cells = [f"{times['plain'] / times[name]:.2f}x" for name in variants if name != "plain"]
    print(f"| {arch} | {batch / times['plain']:,.0f} | " + " | ".join(cells) + " |")


PEAK = """
import resource, sys, torch
from smoothcert.models import build_model
from smoothcert.smoothing.classifier import SmoothedClassifier
torch.manual_seed(0)
model = build_model("cifar_resnet20", 10, [0.5] * 3, [0.25] * 3).eval()
smoothed = SmoothedClassifier(model, 10, 0.25)
with torch.inference_mode():
    model(torch.rand(2, 3, 32, 32))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
smoothed.certify(torch.rand(3, 32, 32), 100, int(sys.argv[1]), 0.001, batch_size=200, seed=0)
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def bench_memory() -> None:
    print("\npeak memory of certify (cifar_resnet20, batch 200), above the process before it")
    for n in (1_000, 100_000):
        out = subprocess.run([sys.executable, "-c", PEAK, str(n)], capture_output=True, text=True, check=True)
        before, after = (int(v) / 1024 for v in out.stdout.split()[-2:])
        print(f"  n = {n:>7,}: +{after - before:.0f} MiB (process peak {after:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU\n")
    print("| model | batch | samples per input | raw noisy forwards/s | (a) raw | (b) certify / raw | (c) dataset / raw |")
    print("|---|---|---|---|---|---|---|")
    for arch in args.models:
        bench_model(arch, args.repeats)
    bench_packing(args.repeats)
    print("\nforward throughput (images/s) and speed-up of each fast option")
    print("| model | plain | fold_bn | channels_last | compile | all three |")
    print("|---|---|---|---|---|---|")
    for arch in args.models:
        bench_fast(arch, args.repeats)
    bench_memory()


if __name__ == "__main__":
    main()
