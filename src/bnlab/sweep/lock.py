"""One sweep at a time per output directory, and one process at a time per run.

Two sweeps on the same ``--out`` would both start the same pending run and write its
rows twice, so :func:`dir_lock` takes an exclusive ``fcntl.flock`` on
``<out>/.bnlab.lock``. The kernel releases it when the holder exits, even on a crash, so
there is never a stale lock to clean up. The holder writes its pid and command line into
the file so a refused sweep can say who holds it.

:func:`run_lock` is the same lock for one run (``<out>/checkpoints/<key[:16]>.lock``),
held by whichever process trains it (the sweep itself, or a pool worker). A worker left
behind by a killed sweep still holds its run's lock, so a re-run never trains that run a
second time concurrently; the lock file is removed by its holder when the run ends.
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
from bnlab.results.store import StoreError, prepare_out_dir

__all__ = ["LOCK_NAME", "RunBusyError", "SweepLockedError", "dir_lock", "run_lock"]

LOCK_NAME = ".bnlab.lock"
_POLL_S = 0.05


class SweepLockedError(UserError):
    """Another process holds the output directory's sweep lock (one line, exit status 2)."""


class RunBusyError(RuntimeError):
    """Another process is training this run (a worker of an earlier, killed sweep)."""


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
        bnlab.results.StorePathError: if ``out_dir`` is (under) a file.
    """
    path = prepare_out_dir(out_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot write to output folder {path.parent} ({exc.strerror}); "
                         "make it writable or use another --out") from exc
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


def run_lock_path(out_dir: str | Path, key: str, root: str | Path | None = None) -> Path:
    """``<root>/<key[:16]>.lock``: the lock file of one run, beside its checkpoints.

    ``root`` is the sweep's checkpoint root, default ``<out>/checkpoints``.
    """
    return (Path(root) if root is not None else Path(out_dir) / "checkpoints") / f"{key[:16]}.lock"


@contextmanager
def run_lock(out_dir: str | Path, key: str, timeout: float = 5.0,
             root: str | Path | None = None) -> Iterator[Path]:
    """Hold the lock of run ``key`` while the ``with`` block trains it.

    The file is unlinked by the holder before it lets go. A process that opened the old
    file and then wins the lock finds the path gone (or another inode there) and retries on
    the new file, so two holders can never both think they have the lock.

    Args:
        out_dir: the output directory.
        key: the run key.
        timeout: seconds to wait for another holder (an orphan dies within about a second
            of its sweep; see :mod:`bnlab.sweep.execute`).
        root: the sweep's checkpoint root (``--checkpoint-root``), default
            ``<out>/checkpoints``.

    Raises:
        RunBusyError: if another process still holds the run after ``timeout`` seconds;
            the message names it.
    """
    path = run_lock_path(out_dir, key, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if _try_lock(fd) and _same_file(fd, path):
            break
        os.close(fd)
        if time.monotonic() >= deadline:
            raise RunBusyError(f"run {key[:16]} is being trained by another process "
                               f"({_holder(path)}); wait for it to end, then re-run")
        time.sleep(_POLL_S)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        yield path
    finally:
        path.unlink(missing_ok=True)  # while still holding it: see the docstring
        os.close(fd)  # closing the last descriptor releases the flock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not unlinked meanwhile)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)
