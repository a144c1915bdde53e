"""Where datasets live on disk, and how files get there without ever being half-written.

The data directory is, in order: the ``data_dir`` argument, the ``BNLAB_DATA`` environment
variable, then the user cache (``$XDG_CACHE_HOME/bnlab``, else ``~/.cache/bnlab``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from bnlab.data.errors import DataError

__all__ = ["atomic_path", "read_npz", "resolve_data_dir", "user_cache_dir", "write_npz_atomic"]


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the data directory: argument, else ``BNLAB_DATA``, else the user cache.

    Args:
        data_dir: an explicit directory; ``None`` falls back to the environment.

    Returns:
        The directory as an absolute :class:`~pathlib.Path` (not created here).

    Example:
        >>> resolve_data_dir("/tmp/d")
        PosixPath('/tmp/d')
    """
    if data_dir is not None:
        return Path(data_dir).expanduser().absolute()
    env = os.environ.get("BNLAB_DATA")
    if env:
        return Path(env).expanduser().absolute()
    return user_cache_dir()


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bnlab``, else ``~/.cache/bnlab`` (not created here)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "bnlab").absolute()


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; move it onto ``target`` only on success.

    The temporary file lives in the same directory so ``os.replace`` is an atomic rename:
    readers see either the old file (or none) or the complete new one, never a partial
    write. On any exception the temporary file is removed and the exception propagates.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_npz_atomic(target: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``target`` as an uncompressed ``.npz``, atomically."""
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())


def read_npz(
    path: Path, keys: Sequence[str], fix: str, *, require: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """Read ``keys`` from the ``.npz`` at ``path`` without unpickling anything.

    Args:
        path: the file.
        keys: arrays to read (they must be present).
        fix: what the user should do if the file is unreadable (goes into the message).
        require: further arrays that must be present but are not read (a format check
            that costs no decompression).

    Raises:
        DataError: the file is not a readable ``.npz`` or lacks a key.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in (*keys, *require) if k not in archive.files]
            if missing:
                raise DataError(
                    f"{path} lacks the arrays {missing} (it has {sorted(archive.files)}); {fix}"
                )
            return {k: archive[k] for k in keys}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(f"cannot read {path} ({err}); {fix}") from err
