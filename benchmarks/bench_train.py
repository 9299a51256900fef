"""Training step time: ADRE_REG against Basic with the same k, and ADRE_ADV against SmoothAdv,
measured in one run (ratios), with samples per second.

    python benchmarks/bench_train.py [--arch small_cnn] [--k 8] [--batch 100] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from smoothcert.models import build_model
from smoothcert.training.config import TrainConfig
from smoothcert.training.loop import training_step

SHAPES = {"small_cnn": (1, 28, 28), "cifar_resnet20": (3, 32, 32), "cifar_resnet110": (3, 32, 32)}


def step_time(model, optimizer, config: TrainConfig, x, labels, noise, steps: int) -> float:
    def one() -> None:
        parts = training_step(model, x, labels, noise, None, config)
        optimizer.zero_grad(set_to_none=True)
        parts.loss.backward()
        optimizer.step()

    one()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        one()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="small_cnn", choices=list(SHAPES))
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--eps", type=float, default=0.5)
    parser.add_argument("--attack-steps", type=int, default=2)
    args = parser.parse_args()
    shape = SHAPES[args.arch]
    torch.manual_seed(0)
    model = build_model(args.arch, 10, [0.5] * shape[0], [0.25] * shape[0]).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, labels = torch.rand(args.batch, *shape), torch.randint(0, 10, (args.batch,))
    noise = 0.25 * torch.randn(args.batch, args.k, *shape)
    configs = {
        "basic": TrainConfig(method="basic", k=args.k),
        "adre": TrainConfig(method="adre", k=args.k, lam=0.2),
        "smoothadv": TrainConfig(method="smoothadv", k=args.k, eps=args.eps, attack_steps=args.attack_steps),
        "adre_adv": TrainConfig(method="adre_adv", k=args.k, lam=0.2, eps=args.eps, attack_steps=args.attack_steps),
    }
    # interleave the methods over rounds so that drifts of the machine hit them alike
    times = {name: [] for name in configs}
    for _ in range(3):
        for name, config in configs.items():
            times[name].append(step_time(model, optimizer, config, x, labels, noise, args.steps))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.arch}, batch {args.batch}, k = {args.k}, attack {args.attack_steps} steps; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for name, seconds in median.items():
        print(f"  {name:10s} {seconds * 1e3:8.1f} ms/step  {args.batch * args.k / seconds:10,.0f} noisy samples/s")
    print(f"ADRE_REG / Basic (same k): {median['adre'] / median['basic']:.3f}")
    print(f"ADRE_ADV / SmoothAdv:      {median['adre_adv'] / median['smoothadv']:.3f}")


if __name__ == "__main__":
    main()
