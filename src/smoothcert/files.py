"""Atomic file writes: write to a temporary file beside the target, then rename over it, so a
reader (or a resumed run) never sees a half-written file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, IO

import torch


def _atomic(path: str | Path, mode: str, write: Callable[[IO[Any]], None]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual mode
        with os.fdopen(handle, mode) as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> Path:
    return _atomic(path, "w", lambda stream: stream.write(text))


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    return _atomic(path, "wb", lambda stream: stream.write(data))


def torch_save_atomic(obj: Any, path: str | Path) -> Path:
    return _atomic(path, "wb", lambda stream: torch.save(obj, stream))
