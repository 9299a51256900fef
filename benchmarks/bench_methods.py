"""Training step time of every method of ``smoothcert compare`` relative to Basic, measured in one
run: the comparison's settings (its :data:`~smoothcert.studies.compare.METHODS` on the dataset's
preset at sigma 0.5, each with its own number of noisy copies), one loader batch of the preset's
size in the method's step layout (``chunks`` forward, backward and optimizer steps of
``batch_size / chunks`` examples: :func:`~smoothcert.training.loop.train_on_batch`, as training
takes them; with training's allocator setting), methods interleaved over rounds. CAT-RS is timed
in its dearest case, every example confident (so the attack on the noise runs on the whole batch).

    python benchmarks/bench_methods.py [--dataset mnist|cifar10] [--batches 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from smoothcert.data import dataset_info
from smoothcert.models import build_model
from smoothcert.runtime.allocator import keep_heap_memory
from smoothcert.studies.compare import CIFAR, ComparePlan, method_cell
from smoothcert.training.config import TrainConfig
from smoothcert.training.loop import train_on_batch

PLANS = {"mnist": ComparePlan(), "cifar10": CIFAR}


def batch_time(model: torch.nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig, x: torch.Tensor,
               labels: torch.Tensor, batches: int) -> float:
    """Median seconds of one loader batch: ``config.chunks`` training steps (noise drawn outside the timing)."""
    generator = torch.Generator().manual_seed(0)
    noise = config.sigma * torch.randn((x.shape[0], config.k, *x.shape[1:]), generator=generator)
    draw = torch.randint(config.k, (x.shape[0],), generator=generator) if config.single_draw_per else None
    extra = {"smoothmix": 0.5 * torch.rand(x.shape[0], generator=generator),
             "catrs": torch.zeros(x.shape[0], config.k)}.get(config.method)  # uniforms 0: K = k wherever c > 0
    target = torch.softmax(torch.randn(x.shape[0], 10, generator=generator), dim=1)
    times = []
    for _ in range(batches + 1):
        start = time.perf_counter()
        train_on_batch(model, optimizer, (x, labels, noise, draw, extra, target), config, config.epochs - 1)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])  # the first batch warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist", choices=list(PLANS))
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    plan = PLANS[args.dataset]
    keep_heap_memory()  # as training on a CPU does
    configs = {name: method_cell(plan, name, None).config(0, "unused")
               for name in plan.methods if name != "ADRE_REG faithful"}  # the faithful objective costs what the capped one does
    info = dataset_info(args.dataset)
    batch = next(iter(configs.values())).batch_size
    torch.manual_seed(0)
    model = build_model(next(iter(configs.values())).arch, info.num_classes, info.mean, info.std).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, *info.input_shape)
    with torch.no_grad():
        labels = model(x).argmax(dim=1)  # the clean prediction: CAT-RS finds each example confident
    times = {name: [] for name in configs}
    for _ in range(args.rounds):  # interleaved, so that drifts of the machine hit every method alike
        for name, config in configs.items():
            times[name].append(batch_time(model, optimizer, config, x, labels, args.batches))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.dataset}: {configs['Basic'].arch}, batch {batch}, sigma {plan.sigma}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; median of {args.rounds} rounds of {args.batches} batches")
    for name, seconds in median.items():
        config = configs[name]
        print(f"  {name:16s} k = {config.k:2d}, {config.chunks} chunk(s)  {seconds * 1e3:8.1f} ms/batch  {seconds / median['Basic']:6.2f} x Basic")


if __name__ == "__main__":
    main()
