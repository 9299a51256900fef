"""Training steps with and without smoothcert's allocator setting, each in its own process.

Every process builds the same model and batch and times training steps of one method (forward
over the ``k`` noisy copies, backward, SGD step) after ``keep_heap_memory()``, which
``smoothcert.training.loop.train`` calls on a CPU; ``SMOOTHCERT_LEAVE_ALLOCATOR=1`` leaves the allocator alone.
Rounds are interleaved; printed: the median step time and the speed-up of the fix.

    python benchmarks/train_allocator.py [--rounds 3] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CASES = {  # name: (architecture, input shape, TrainConfig fields)
    "small_cnn basic k=1": ("small_cnn", (1, 28, 28), dict(method="basic", k=1)),
    "small_cnn adre k=4": ("small_cnn", (1, 28, 28), dict(method="adre", k=4, lam=0.2, single_draw_per=True)),
    "cifar_resnet20 basic k=1": ("cifar_resnet20", (3, 32, 32), dict(method="basic", k=1)),
    "cifar_resnet20 adre k=4": ("cifar_resnet20", (3, 32, 32), dict(method="adre", k=4, lam=0.2, single_draw_per=True)),
}
BATCH, SIGMA = 100, 0.25


def worker(case: str, steps: int) -> None:
    import torch

    from smoothcert.runtime.allocator import keep_heap_memory
    from smoothcert.models import build_model
    from smoothcert.training.config import TrainConfig
    from smoothcert.training.loop import training_step

    keep_heap_memory()
    arch, shape, fields = CASES[case]
    torch.manual_seed(0)
    model = build_model(arch, 10, [0.5] * shape[0], [0.25] * shape[0]).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    config = TrainConfig(arch=arch, sigma=SIGMA, **fields)
    x, labels = torch.rand((BATCH, *shape)), torch.randint(10, (BATCH,))
    noise = SIGMA * torch.randn((BATCH, config.k, *shape))
    draw = torch.randint(config.k, (BATCH,)) if config.single_draw_per else None
    times = []
    for step in range(steps + 1):
        started = time.perf_counter()
        parts = training_step(model, x, labels, noise, draw, config)
        optimizer.zero_grad(set_to_none=True)
        parts.loss.backward()
        optimizer.step()
        if step:  # the first step warms up
            times.append(time.perf_counter() - started)
    print(json.dumps({"seconds": statistics.median(times)}))


def measure(case: str, fix: bool, steps: int) -> float:
    env = {**os.environ, "SMOOTHCERT_LEAVE_ALLOCATOR": "0" if fix else "1"}
    out = subprocess.run([sys.executable, __file__, "--worker", case, str(steps)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return
    times: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.rounds):
        for case in CASES:
            for fix in (False, True):
                times.setdefault((case, fix), []).append(measure(case, fix, args.steps))
    print(f"median seconds per training step (batch {BATCH}, {args.rounds} interleaved rounds, one process each)\n")
    print("| case | allocator left alone | with the fix | speed-up |")
    print("|---|---|---|---|")
    for case in CASES:
        alone, fixed = (statistics.median(times[case, fix]) for fix in (False, True))
        print(f"| {case} | {alone:.3f} | {fixed:.3f} | {alone / fixed:.2f}x |")


if __name__ == "__main__":
    main()
