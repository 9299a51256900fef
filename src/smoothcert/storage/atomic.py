"""Atomic file writes: write to a temporary file beside the target, fsync it, rename it over the
target, sync the folder. A reader (or a resumed run) sees the old file or the new one, never a
half-written one, even when the writer is killed mid-write. Only a regular file (or nothing) is
replaced: a target that is a device, a FIFO, a socket or a link to one is refused, since the
rename would put a regular file in its place."""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, IO


def _unwritable(target: Path, error: OSError) -> OSError:
    return OSError(error.errno, f"cannot write {target} ({error.strerror}); expected a path in a folder that can be created and written")


def ensure_writable_folder(path: str | Path) -> Path:
    """Create the folder ``path`` if needed and check that files can be written in it, so that a
    long run fails at its start rather than at its first save."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder; expected a folder to write into (or a path where one can be made)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise _unwritable(folder, error) from None
    return folder


def remove_stale_temporaries(path: str | Path) -> None:
    """Remove the temporary files a writer of ``path`` killed mid-write left beside it (a
    process killed with SIGKILL cannot clean up; the target itself is intact)."""
    target = Path(path)
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        stale.unlink(missing_ok=True)


def refuse_special(path: str | Path) -> Path:
    """``path``, refused (ValueError) when it exists and is not a regular file once links are
    followed: results are only ever written over regular files."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{target} is a folder; expected the path of a file to write")
    if (target.exists() or target.is_symlink()) and not target.is_file():
        kind = "a device" if target.is_char_device() or target.is_block_device() else "a FIFO" if target.is_fifo() else \
            "a socket" if target.is_socket() else "a broken link"
        raise ValueError(f"{target} is not a regular file ({kind}); results are written only to regular files: choose another path")
    return target


def write_atomic(path: str | Path, mode: str, write: Callable[[IO[Any]], None]) -> Path:
    """Call ``write`` on a stream opened in ``mode`` over a temporary file beside ``path``, then
    move it over ``path`` as the module describes; returns ``path``. A ``path`` that is not a
    regular file is refused (:func:`refuse_special`)."""
    target = refuse_special(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as error:
        raise _unwritable(target, error) from None
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual mode
        with os.fdopen(handle, mode) as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
        _sync_folder(target.parent)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the system lets a folder be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems do not sync folders
    finally:
        os.close(descriptor)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, "w", lambda stream: stream.write(text))


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    return write_atomic(path, "wb", lambda stream: stream.write(data))
