"""Several processes (``torchrun``): one per device, on one machine or many.

``torchrun`` describes the group in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``); a plain run is a group of one.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
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


@contextmanager
def process_group(device: str | None) -> Iterator[Distributed]:
    """The entry point's process group: the one ``torchrun`` describes (nccl on CUDA, gloo on the
    CPU, each process on the GPU of its local rank), or a group of one; every process waits for
    the others and the group ends when the block ends."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    resolved = resolve_device(device)
    if world == 1:
        yield Distributed(device=resolved)
        return
    cuda = resolved.type == "cuda"
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        if cuda:
            torch.cuda.set_device(local_rank)
        yield Distributed(rank=rank, world=world, device=torch.device(f"cuda:{local_rank}" if cuda else "cpu"))
        dist.barrier()
    finally:
        dist.destroy_process_group()
