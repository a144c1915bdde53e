"""MNIST and CIFAR-10: read ``<dir>/mnist.npz`` / ``<dir>/cifar10.npz``, or build them.

The ``.npz`` files hold ``x_train, y_train, x_test, y_test`` as ``uint8`` (MNIST images
``(N, 28, 28)``, CIFAR-10 images ``(N, 32, 32, 3)``, HWC). When a file is absent, the
official archives are downloaded (MNIST idx files; the CIFAR-10 *binary* version, so no
pickle is ever loaded), verified, converted and written atomically.
"""

from __future__ import annotations

import gzip
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bnlab.data.cache import read_npz, write_npz_atomic
from bnlab.data.download import download, source_url
from bnlab.data.errors import DataError

__all__ = ["SPECS", "VisionSpec", "ensure_npz", "load_vision"]

_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class VisionSpec:
    """How one image dataset is stored and where its official archives are."""

    name: str
    file: str  # the .npz in the data directory
    image_shape: tuple[int, ...]  # per image, as stored in the .npz
    base_url: str  # default download base, overridden by BNLAB_MIRROR
    archives: tuple[str, ...]


SPECS: dict[str, VisionSpec] = {
    # PyTorch's mirror of LeCun's files (yann.lecun.com often refuses scripted downloads);
    # the bytes are the official ones, which the checksum table enforces.
    "mnist": VisionSpec(
        "mnist",
        "mnist.npz",
        (28, 28),
        "https://ossci-datasets.s3.amazonaws.com/mnist",
        (
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ),
    ),
    "cifar10": VisionSpec(
        "cifar10",
        "cifar10.npz",
        (32, 32, 3),
        "https://www.cs.toronto.edu/~kriz",
        ("cifar-10-binary.tar.gz",),
    ),
}


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse a gzipped idx file of unsigned bytes (magic ``0x0000 08 <ndim>``)."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 + 4 * ndim or raw[:4] != bytes((0, 0, 8, ndim)):
        raise DataError(f"{path} is not an idx file of {ndim}-d unsigned bytes")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} but holds {body.size} bytes")
    return body.reshape(dims)


def _convert_mnist(folder: Path) -> dict[str, np.ndarray]:
    return {
        "x_train": _read_idx(folder / "train-images-idx3-ubyte.gz", 3),
        "y_train": _read_idx(folder / "train-labels-idx1-ubyte.gz", 1),
        "x_test": _read_idx(folder / "t10k-images-idx3-ubyte.gz", 3),
        "y_test": _read_idx(folder / "t10k-labels-idx1-ubyte.gz", 1),
    }


def _read_cifar_member(archive: tarfile.TarFile, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one CIFAR-10 binary batch: records of 1 label byte + 3072 CHW pixel bytes."""
    try:
        handle = archive.extractfile(f"cifar-10-batches-bin/{name}")
    except KeyError as err:
        raise DataError(f"{archive.name} lacks cifar-10-batches-bin/{name}") from err
    if handle is None:
        raise DataError(f"{archive.name}: {name} is not a regular file")
    raw = np.frombuffer(handle.read(), dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise DataError(f"{archive.name}: {name} is not a whole number of 3073-byte records")
    records = raw.reshape(-1, 3073)
    # (N, 3072) CHW bytes -> (N, 32, 32, 3) HWC, the layout of cifar10.npz
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), records[:, 0].copy()


def _convert_cifar(folder: Path) -> dict[str, np.ndarray]:
    with tarfile.open(folder / "cifar-10-binary.tar.gz", "r:gz") as archive:
        train = [_read_cifar_member(archive, f"data_batch_{i}.bin") for i in range(1, 6)]
        x_test, y_test = _read_cifar_member(archive, "test_batch.bin")
    return {
        "x_train": np.concatenate([x for x, _ in train]),
        "y_train": np.concatenate([y for _, y in train]),
        "x_test": x_test,
        "y_test": y_test,
    }


def ensure_npz(name: str, data_dir: Path) -> Path:
    """Return ``<data_dir>/<name>.npz``, downloading and converting it first if absent.

    Raises:
        DataError: the download or the conversion failed; nothing is left half-written.
    """
    spec = SPECS[name]
    target = data_dir / spec.file
    if target.exists():
        return target
    data_dir.mkdir(parents=True, exist_ok=True)
    convert = _convert_mnist if name == "mnist" else _convert_cifar
    # Raw archives go to a scratch folder inside data_dir that is removed afterwards.
    with tempfile.TemporaryDirectory(prefix=f".{name}-download-", dir=data_dir) as scratch:
        folder = Path(scratch)
        for file in spec.archives:
            try:
                download(source_url(spec.base_url, file), folder / file)
            except DataError as err:
                raise DataError(f"cannot build {target}: {err}") from err
        try:
            arrays = convert(folder)
        except (OSError, EOFError, tarfile.TarError) as err:
            raise DataError(f"cannot decode the {name} archives ({err}); try again") from err
        try:
            write_npz_atomic(target, arrays)
        except OSError as err:
            raise DataError(
                f"could not write {target} ({err}); free some space or pass another data_dir"
            ) from err
    return target


def _check(path: Path, arrays: dict[str, np.ndarray], spec: VisionSpec, fix: str) -> None:
    for split in ("train", "test"):
        if f"x_{split}" not in arrays:
            continue
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.shape[1:] != spec.image_shape:
            raise DataError(
                f"{path}: x_{split} is {x.dtype}{x.shape}, expected uint8 (N, "
                f"{', '.join(map(str, spec.image_shape))}); {fix}"
            )
        if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{path}: y_{split} is {y.dtype}{y.shape}, expected ({len(x)},); {fix}")
        if y.size and (y.min() < 0 or y.max() > 9):
            raise DataError(f"{path}: y_{split} has labels outside 0..9; {fix}")


def load_vision(name: str, split: str, data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of MNIST or CIFAR-10 as float32 in [0, 1], channels first.

    Returns:
        ``x`` of shape (N, 1, 28, 28) or (N, 3, 32, 32), float32; ``y`` of shape (N,), int64.
    """
    spec = SPECS[name]
    path = ensure_npz(name, data_dir)
    fix = f"delete {path} to download it again, or replace it with a good copy"
    # Only the requested split is decompressed: CIFAR-10 train alone is 150 MB.
    arrays = read_npz(path, (f"x_{split}", f"y_{split}"), fix, require=_KEYS)
    _check(path, arrays, spec, fix)
    x_u8 = torch.from_numpy(arrays[f"x_{split}"])
    if x_u8.ndim == 3:  # (N, H, W) -> (N, 1, H, W)
        x_chw = x_u8.unsqueeze(1)
    else:  # (N, H, W, C) -> (N, C, H, W)
        x_chw = x_u8.permute(0, 3, 1, 2)
    x = torch.empty(x_chw.shape, dtype=torch.float32).copy_(x_chw).div_(255.0)
    y = torch.from_numpy(arrays[f"y_{split}"].astype(np.int64))
    return x, y
