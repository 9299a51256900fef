"""Several processes (``torchrun``): one per device, on one machine or many.

``torchrun`` describes the group in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``); a plain run is a group of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False
    """Whether this object started the process group (and so ends it in :func:`teardown`)."""

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


def setup_distributed(device: str | None) -> Distributed:
    """Join the process group that ``torchrun`` describes (nccl on CUDA, gloo on the CPU),
    unless it is already joined; each process takes the GPU of its local rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    resolved = resolve_device(device)
    cuda = resolved.type == "cuda"
    if world == 1:
        return Distributed(device=resolved)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(local_rank)
    return Distributed(rank=rank, world=world, device=torch.device(f"cuda:{local_rank}" if cuda else "cpu"), owns_group=owns_group)


def teardown(env: Distributed) -> None:
    """Wait for every process, and end the group if ``env`` started it."""
    if env.world > 1:
        dist.barrier()
    if env.owns_group:
        dist.destroy_process_group()
