"""Fetch a file over HTTP(S), verify its digests, and never leave a half-written file.

Every downloadable file must have at least one row in :data:`CHECKSUMS`; a file without one
is refused, so unverified bytes never reach the converters. Tests substitute the table with
digests of their own fixture archives.

``BNLAB_MIRROR`` replaces the base URL of every download (``<mirror>/<file name>``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from bnlab.data.cache import atomic_path
from bnlab.data.errors import DataError

__all__ = ["CHECKSUMS", "Checksum", "download", "source_url"]

_CHUNK = 1 << 20  # 1 MiB: bounded memory whatever the file size


class Checksum(NamedTuple):
    """One published digest of one downloadable file."""

    file: str
    algorithm: str  # a hashlib name: "md5", "sha256"
    digest: str  # lower-case hex


# Where the digests come from (there is no network here, so none was computed by us):
# - MNIST (LeCun, Cortes & Burges): the MNIST page publishes no digests. md5: the values
#   torchvision's MNIST dataset has pinned for years; sha256: the values TensorFlow Datasets
#   records for the same files. Both identify the same gzip files (sizes 9,912,422 /
#   28,881 / 1,648,877 / 4,542 bytes), and both must match.
# - CIFAR-10 binary version: md5 as published by Krizhevsky on
#   https://www.cs.toronto.edu/~kriz/cifar.html ("CIFAR-10 binary version (suitable for C
#   programs)"); sha256 as recorded by TensorFlow Datasets for the same 170,052,171-byte file.
CHECKSUMS: tuple[Checksum, ...] = (
    Checksum("train-images-idx3-ubyte.gz", "md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    Checksum(
        "train-images-idx3-ubyte.gz",
        "sha256",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    Checksum("train-labels-idx1-ubyte.gz", "md5", "d53e105ee54ea40749a09fcbcd1e9432"),
    Checksum(
        "train-labels-idx1-ubyte.gz",
        "sha256",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    Checksum("t10k-images-idx3-ubyte.gz", "md5", "9fb629c4189551a2d022fa330f9573f3"),
    Checksum(
        "t10k-images-idx3-ubyte.gz",
        "sha256",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    Checksum("t10k-labels-idx1-ubyte.gz", "md5", "ec29112dd5afa0611ce80d1b7f02629c"),
    Checksum(
        "t10k-labels-idx1-ubyte.gz",
        "sha256",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
    Checksum("cifar-10-binary.tar.gz", "md5", "c32a1d4ab5d03f1284b67883e8d87530"),
    Checksum(
        "cifar-10-binary.tar.gz",
        "sha256",
        "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    ),
)


def source_url(default_base: str, file: str) -> str:
    """Return the URL of ``file``: under ``BNLAB_MIRROR`` if set, else under ``default_base``."""
    base = os.environ.get("BNLAB_MIRROR") or default_base
    return f"{base.rstrip('/')}/{file}"


def _expected(file: str, table: Iterable[Checksum]) -> dict[str, str]:
    rows = {row.algorithm: row.digest.lower() for row in table if row.file == file}
    if not rows:
        raise DataError(
            f"no published checksum is known for {file!r}; refusing to use unverified data "
            "(add a row to bnlab.data.download.CHECKSUMS)"
        )
    return rows


def _stream(url: str, tmp: Path, algorithms: Iterable[str], timeout: float) -> dict[str, str]:
    """Copy ``url`` into ``tmp`` chunk by chunk; return the hex digests of what was read."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
        expected_len = response.headers.get("Content-Length")
        received = 0
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            received += len(chunk)
            for hasher in hashers.values():
                hasher.update(chunk)
        if expected_len is not None and received != int(expected_len):
            raise DataError(f"{url}: truncated download ({received} of {expected_len} bytes)")
        out.flush()
        os.fsync(out.fileno())
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def download(
    url: str, dest: Path, *, table: Iterable[Checksum] | None = None, timeout: float = 60.0
) -> Path:
    """Download ``url`` to ``dest`` and verify every digest listed for its file name.

    ``dest`` appears only once the whole file has arrived and matched; on any failure
    nothing is left at ``dest`` (the bytes go to a temporary file renamed at the end).

    Args:
        url: the source; its last path component names the file in the checksum table.
        dest: where the verified file goes.
        table: checksum rows to use; defaults to :data:`CHECKSUMS`.
        timeout: seconds to wait for each network operation.

    Returns:
        ``dest``.

    Raises:
        DataError: the file has no known digest, the transfer failed or was cut short, or
            a digest does not match.
    """
    file = url.rsplit("/", 1)[-1]
    expected = _expected(file, CHECKSUMS if table is None else table)
    fix = (
        "check the network, or set BNLAB_MIRROR to a server holding the official file, "
        "or place the converted .npz in the data directory yourself"
    )
    with atomic_path(dest) as tmp:
        try:
            got = _stream(url, tmp, expected, timeout)
        except DataError as err:
            raise DataError(f"{err}; nothing was written to {dest}; {fix}") from err
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            raise DataError(f"download of {url} to {dest} failed ({err}); {fix}") from err
        for algorithm, digest in expected.items():
            if got[algorithm] != digest:
                raise DataError(
                    f"{url}: {algorithm} is {got[algorithm]}, expected {digest}; the file is "
                    f"corrupt or not the official one, so nothing was written to {dest}; {fix}"
                )
    return dest
