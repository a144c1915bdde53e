"""Tiny archives in the official MNIST idx and CIFAR-10 binary formats, and their digests."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile

import numpy as np


def idx_gz(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the idx format (magic 0x0000 08 ndim, big-endian dims)."""
    header = bytes((0, 0, 8, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def make_mnist_archives(seed: int = 0) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 12, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 5, dtype=np.uint8),
    }
    files = {
        "train-images-idx3-ubyte.gz": idx_gz(arrays["x_train"]),
        "train-labels-idx1-ubyte.gz": idx_gz(arrays["y_train"]),
        "t10k-images-idx3-ubyte.gz": idx_gz(arrays["x_test"]),
        "t10k-labels-idx1-ubyte.gz": idx_gz(arrays["y_test"]),
    }
    return files, arrays


def _cifar_batch(rng: np.random.Generator, n: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """One binary batch: per record, a label byte then R, G, B planes of 32x32 (row-major)."""
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    chw = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    records = b"".join(bytes([int(labels[i])]) + chw[i].tobytes() for i in range(n))
    hwc = np.stack([np.moveaxis(chw[i], 0, -1) for i in range(n)])
    return records, hwc, labels


def make_cifar_archive(seed: int = 0) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    xs, ys = [], []
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            records, hwc, labels = _cifar_batch(rng, 3)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(records)
            tar.addfile(info, io.BytesIO(records))
            xs.append(hwc)
            ys.append(labels)
    arrays = {
        "x_train": np.concatenate(xs[:5]),
        "y_train": np.concatenate(ys[:5]),
        "x_test": xs[5],
        "y_test": ys[5],
    }
    return {"cifar-10-binary.tar.gz": buffer.getvalue()}, arrays


def digest_table(files: dict[str, bytes]) -> tuple:
    from bnlab.data.download import Checksum

    rows = []
    for name, blob in files.items():
        rows.append(Checksum(name, "sha256", hashlib.sha256(blob).hexdigest()))
        rows.append(Checksum(name, "md5", hashlib.md5(blob).hexdigest()))
    return tuple(rows)
