"""One writer per output: an OS-level lock (``flock``) on a hidden file beside each output, held
for the whole run. A second run on the same output is refused at once, naming the process that
holds it. The lock dies with its process (a killed run leaves no lock that blocks a rerun), and
the lock file is removed when the run ends."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterable, Iterator


def lock_path(path: Path) -> Path:
    """The hidden lock file of output ``path``."""
    return path.with_name(f".{path.name}.lock")


def _acquire(path: Path) -> int:
    """A descriptor holding the lock of ``path``; refuses (ValueError) while another process holds it."""
    target = lock_path(path)
    while True:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise OSError(error.errno, f"cannot write {path} ({error.strerror}); expected a path in a folder that can be created "
                                       "and written") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 200).decode(errors="replace").strip() or "another process"
            os.close(descriptor)
            raise ValueError(f"{path} is being written by {holder}; wait for that run to finish, or choose another output "
                             "file") from None
        try:
            same = os.fstat(descriptor).st_ino == os.stat(target).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a lock file that its holder removed while we waited to open it
            break
        os.close(descriptor)
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"process {os.getpid()} on {socket.gethostname()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})".encode())
    return descriptor


def _release(path: Path, descriptor: int) -> None:
    lock_path(path).unlink(missing_ok=True)  # while still held, so that no waiter locks a removed file
    os.close(descriptor)


@contextmanager
def exclusive(paths: Iterable[Path]) -> Iterator[None]:
    """Hold the lock of every output in ``paths`` inside the block (see the module)."""
    with ExitStack() as stack:
        for path in paths:
            descriptor = _acquire(path)
            stack.callback(_release, path, descriptor)
        yield
