"""Keep large CPU buffers in the heap: the fix for the page-fault tax of large forward passes.

Cause. glibc's ``malloc`` serves an allocation above its mmap threshold (128 KiB at first, raised
dynamically up to 32 MiB) with a fresh ``mmap`` and returns it to the system on ``free``; freed
memory at the top of the heap beyond the trim threshold is returned too. A forward pass over
1,000 noisy images allocates activation buffers of tens of MiB (ResNet-20: 65 MiB per layer
output at batch 1,000), frees them, and allocates them again on the next batch: every pass
page-faults its whole working set back in, and the kernel zeroes each page. On a 2-core CPU this
took about half the time of certification at batch 1,000.

Fix. Raise both thresholds once, with ``mallopt`` (through ctypes), before the first large
forward pass: allocations below 1 GiB then come from the heap, and freed memory stays in it for
the next batch. It changes where memory comes from, never what is computed, so results are
bit-identical. The price: a process keeps the peak of its heap instead of returning it to the
system after a pass (the memory a batch needs, which it needed anyway). It is applied only on
glibc (Linux), only when smoothcert runs a model on the CPU, and not at all with
``SMOOTHCERT_LEAVE_ALLOCATOR=1`` in the environment.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""``mallopt`` parameters, from glibc's ``malloc.h``."""
MMAP_THRESHOLD = 1 << 30
"""Allocations below 1 GiB come from the heap."""
TRIM_THRESHOLD = (1 << 31) - 1
"""Up to 2 GiB of free memory at the top of the heap stays there (``mallopt`` takes an int)."""
LEAVE_ALLOCATOR = "SMOOTHCERT_LEAVE_ALLOCATOR"
"""Set this environment variable to ``1`` to leave the allocator alone."""

_applied: bool | None = None


def keep_heap_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; returns whether they are raised
    (False off glibc, when ``mallopt`` refuses, or when :data:`LEAVE_ALLOCATOR` is set to 1)."""
    global _applied
    if _applied is None:
        _applied = False
        if os.environ.get(LEAVE_ALLOCATOR, "0") != "1" and platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied


def heap_kept() -> bool:
    """Whether :func:`keep_heap_memory` has raised the thresholds in this process."""
    return bool(_applied)
