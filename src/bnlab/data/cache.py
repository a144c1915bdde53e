"""Where datasets live on disk, and how files get there without ever being half-written.

The data directory is, in order: the ``data_dir`` argument, the ``BNLAB_DATA`` environment
variable, then the user cache (``$XDG_CACHE_HOME/bnlab``, else ``~/.cache/bnlab``).

Every ``.npz`` bnlab writes carries the sha256 of each of its arrays (dtype, shape and
bytes) in an extra member, :data:`DIGESTS_KEY`; :func:`read_npz` checks the arrays it
reads against it, so a file changed or damaged after it was written is refused rather
than trained on. Files are read with ``allow_pickle=False``: a pickle is never run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bnlab.data.errors import DataError

__all__ = [
    "DIGESTS_KEY",
    "array_digest",
    "atomic_path",
    "read_npz",
    "resolve_data_dir",
    "user_cache_dir",
    "write_npz_atomic",
]

#: The ``.npz`` member holding ``{array name: sha256}`` as JSON text (a 0-d str array).
DIGESTS_KEY = "bnlab_sha256"


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


def array_digest(array: np.ndarray) -> str:
    """The sha256 (hex) of an array's dtype, shape and C-order bytes."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


def write_npz_atomic(target: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` and their digests to ``target`` as an uncompressed ``.npz``, atomically."""
    digests = json.dumps({k: array_digest(v) for k, v in arrays.items()}, sort_keys=True)
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays, **{DIGESTS_KEY: np.array(digests)})
        handle.flush()
        os.fsync(handle.fileno())


def read_npz(
    path: Path,
    keys: Sequence[str],
    fix: str,
    *,
    require: Sequence[str] = (),
    require_digests: bool = False,
) -> dict[str, np.ndarray]:
    """Read ``keys`` from the ``.npz`` at ``path`` without unpickling anything.

    Arrays are checked against the digests stored with them (:data:`DIGESTS_KEY`) when
    the file has them.

    Args:
        path: the file.
        keys: arrays to read (they must be present).
        fix: what the user should do if the file is unreadable (goes into the message).
        require: further arrays that must be present but are not read (a format check
            that costs no decompression).
        require_digests: refuse a file without digests (a cache only bnlab writes).

    Raises:
        DataError: the file is not a readable ``.npz``, lacks a key or a digest, or an
            array does not match its digest.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in (*keys, *require) if k not in archive.files]
            if missing:
                raise DataError(f"{path} lacks the arrays {missing[:4]} (it has "
                                f"{sorted(archive.files)[:8]}); {fix}")
            arrays = {k: archive[k] for k in keys}
            digests = _stored_digests(archive, path, fix, require_digests)
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(f"cannot read {path} ({str(err)[:120]}); {fix}") from err
    for key, array in arrays.items():
        if digests is not None and digests.get(key) != array_digest(array):
            raise DataError(f"{key} of {path} does not match the digest stored with it (the "
                            f"file was changed or damaged after it was written); {fix}")
    return arrays


def _stored_digests(archive: Any, path: Path, fix: str, required: bool) -> dict | None:
    if DIGESTS_KEY not in archive.files:
        if required:
            raise DataError(f"{path} has no stored digests, so it cannot be verified; {fix}")
        return None
    try:
        digests = json.loads(str(archive[DIGESTS_KEY]))
    except ValueError as err:
        raise DataError(f"{path}: its stored digests are unreadable; {fix}") from err
    if not isinstance(digests, dict):
        raise DataError(f"{path}: its stored digests are unreadable; {fix}")
    return digests
