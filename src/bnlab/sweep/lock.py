"""One sweep at a time per output directory.

Two sweeps on the same ``--out`` would both start the same pending run and write its
rows twice, so :func:`dir_lock` takes an exclusive ``fcntl.flock`` on
``<out>/.bnlab.lock``. The kernel releases it when the holder exits, even on a crash, so
there is never a stale lock to clean up. The holder writes its pid and command line into
the file so a refused sweep can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bnlab.errors import UserError

__all__ = ["LOCK_NAME", "SweepLockedError", "dir_lock"]

LOCK_NAME = ".bnlab.lock"
_POLL_S = 0.05


class SweepLockedError(UserError):
    """Another process holds the output directory's sweep lock (one line, exit status 2)."""


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "an unknown process"


@contextmanager
def dir_lock(out_dir: str | Path, timeout: float | None = 0.0) -> Iterator[Path]:
    """Hold the sweep lock of ``out_dir`` for the duration of the ``with`` block.

    Args:
        out_dir: the output directory (created if missing).
        timeout: seconds to wait for another sweep to finish; ``0`` refuses at once,
            ``None`` waits as long as it takes.

    Yields:
        The lock file's path.

    Raises:
        SweepLockedError: if the lock is still held after ``timeout`` seconds; the
            message names the holding process.
    """
    path = Path(out_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, timeout)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv)}\n".encode())
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, timeout: float | None) -> None:
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if deadline is not None and time.monotonic() >= deadline:
                waited = f" after waiting {timeout:g} s" if timeout else ""
                raise SweepLockedError(
                    f"another bnlab sweep is writing to {path.parent} ({_holder(path)}){waited}; "
                    "wait for it to finish, pass a lock timeout, or use another --out"
                ) from None
            time.sleep(_POLL_S)
