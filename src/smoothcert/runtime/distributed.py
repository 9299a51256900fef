"""Several processes (``torchrun``): one per device, on one machine or many.

``torchrun`` describes the group in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``); a plain run is a group of one.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist


@dataclass
class Distributed:
    """Where this process runs: its rank among ``world`` processes and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str | None) -> torch.device:
    """``device`` as a torch device (CUDA if available when None), refused unless it exists here."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a device name; expected cpu, cuda or cuda:<index>") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this machine has no CUDA device; use --device cpu")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported; expected cpu, cuda or cuda:<index>")
    return resolved


def local(device: str | None) -> Distributed:
    """A group of one on ``device``, for library calls that are not given a group; refused under
    ``torchrun``, whose processes must share one group, created by the entry point."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("under torchrun, create the process group once in the entry point (smoothcert.runtime.distributed."
                         "process_group) and pass it to the library (env=...)")
    return Distributed(device=resolve_device(device))


GROUP_TIMEOUT = timedelta(hours=2)
"""How long a collective waits for every process: sharded certification with early stopping can
leave processes at the final barrier for far longer than torch's 10-minute default."""


@contextmanager
def process_group(device: str | None) -> Iterator[Distributed]:
    """The entry point's process group: the one ``torchrun`` describes (nccl on CUDA, gloo on the
    CPU, each process on the GPU of its local rank, set before the group is made and bound to it),
    or a group of one; every process waits for the others and the group ends when the block ends."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    resolved = resolve_device(device)
    if world == 1:
        yield Distributed(device=resolved)
        return
    if "RANK" not in os.environ or "LOCAL_RANK" not in os.environ:
        raise ValueError(f"WORLD_SIZE is {world} but RANK or LOCAL_RANK is not set; start several processes with torchrun")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if resolved.type == "cuda":
        local_device = torch.device(f"cuda:{local_rank}")
        torch.cuda.set_device(local_device)
        dist.init_process_group(backend="nccl", device_id=local_device, timeout=GROUP_TIMEOUT)
    else:
        local_device = torch.device("cpu")
        dist.init_process_group(backend="gloo", timeout=GROUP_TIMEOUT)
    try:
        yield Distributed(rank=rank, world=world, device=local_device)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def agreed_any(flag: bool, env: Distributed) -> bool:
    """Whether ``flag`` holds on any process of ``env``'s group (every process gets the same
    answer, so that a decision to stop is taken by all of them together)."""
    if env.world == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def refuse_under_torchrun(command: str) -> None:
    """Refuse a command that does not split its work between ``torchrun``'s processes, in one line."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(f"{command} does not split its work between torchrun's processes (each would write the whole file); "
                         f"run it as independent jobs with --shard K/N and join them with smoothcert merge")
