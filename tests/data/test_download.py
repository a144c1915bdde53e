"""The download path against a loopback server: every outcome is good data or a DataError."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _data_helpers import digest_table, make_cifar_archive, make_mnist_archives

from bnlab.data import DataError, load
from bnlab.data import cache as cache_module
from bnlab.data import download as download_module
from bnlab.data.vision import SPECS

BUILDERS = {"mnist": make_mnist_archives, "cifar10": make_cifar_archive}


def _serve(server, name: str, monkeypatch: pytest.MonkeyPatch):
    files, arrays = BUILDERS[name]()
    server.files.update(files)
    monkeypatch.setattr(download_module, "CHECKSUMS", digest_table(files))
    return files, arrays


def _expected_x(name: str, x_u8: np.ndarray) -> np.ndarray:
    # Independent reference: add the channel axis (MNIST) or move HWC -> CHW (CIFAR) in numpy.
    x = x_u8[:, None] if name == "mnist" else x_u8.transpose(0, 3, 1, 2)
    return x.astype(np.float64) / 255.0


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_good_archive_is_downloaded_converted_and_cached(
    name, fixture_server, tmp_path, monkeypatch
):
    _, arrays = _serve(fixture_server, name, monkeypatch)
    for split in ("train", "test"):
        x, y = load(name, split, data_dir=tmp_path)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        np.testing.assert_allclose(
            x.double().numpy(), _expected_x(name, arrays[f"x_{split}"]), atol=1e-7
        )
        np.testing.assert_array_equal(y.numpy(), arrays[f"y_{split}"].astype(np.int64))
    # Only the converted file is left, with the documented keys, uint8 arrays and digests.
    assert _leftovers(tmp_path) == [SPECS[name].file]
    with np.load(tmp_path / SPECS[name].file) as npz:
        keys = ["x_test", "x_train", "y_test", "y_train"]
        assert sorted(npz.files) == sorted([*keys, cache_module.DIGESTS_KEY])
        digests = json.loads(str(npz[cache_module.DIGESTS_KEY]))
        for key, ref in arrays.items():
            np.testing.assert_array_equal(npz[key], ref)
            assert digests[key] == cache_module.array_digest(npz[key])
    # The second load uses the file and does not touch the network.
    fixture_server.requests.clear()
    load(name, "test", data_dir=tmp_path)
    assert fixture_server.requests == []


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_bad_hash_raises_and_writes_nothing(name, fixture_server, tmp_path, monkeypatch):
    files, _ = _serve(fixture_server, name, monkeypatch)
    victim = SPECS[name].archives[0]
    blob = bytearray(files[victim])
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte, same length
    fixture_server.files[victim] = bytes(blob)
    with pytest.raises(DataError, match=re.escape(victim)):
        load(name, "train", data_dir=tmp_path)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_truncated_download_raises_and_writes_nothing(name, fixture_server, tmp_path, monkeypatch):
    _serve(fixture_server, name, monkeypatch)
    fixture_server.truncate.add(SPECS[name].archives[-1])
    with pytest.raises(DataError, match=r"truncated download.*BNLAB_MIRROR"):
        load(name, "train", data_dir=tmp_path)
    assert _leftovers(tmp_path) == []


def test_missing_file_on_server_raises(fixture_server, tmp_path, monkeypatch):
    _serve(fixture_server, "mnist", monkeypatch)
    del fixture_server.files["t10k-labels-idx1-ubyte.gz"]
    with pytest.raises(DataError, match="404"):
        load("mnist", "test", data_dir=tmp_path)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "failure", [OSError("disk full"), KeyboardInterrupt()], ids=["oserror", "interrupt"]
)
def test_interrupted_write_leaves_no_file(failure, fixture_server, tmp_path, monkeypatch):
    _serve(fixture_server, "mnist", monkeypatch)

    def half_write(handle, **arrays):
        handle.write(b"PK\x03\x04 partial")  # some bytes reach the temporary file
        raise failure

    monkeypatch.setattr(cache_module.np, "savez", half_write)
    expected = DataError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        load("mnist", "train", data_dir=tmp_path)
    assert _leftovers(tmp_path) == []
    monkeypatch.undo()  # the next attempt, with a working disk, succeeds
    _serve(fixture_server, "mnist", monkeypatch)
    monkeypatch.setenv("BNLAB_MIRROR", fixture_server.url)
    x, _ = load("mnist", "train", data_dir=tmp_path)
    assert x.shape == (12, 1, 28, 28)


def test_file_without_published_digest_is_refused(fixture_server, tmp_path, monkeypatch):
    files, _ = _serve(fixture_server, "mnist", monkeypatch)
    table = tuple(r for r in digest_table(files) if r.file != "train-labels-idx1-ubyte.gz")
    monkeypatch.setattr(download_module, "CHECKSUMS", table)
    with pytest.raises(DataError, match="no published checksum"):
        load("mnist", "train", data_dir=tmp_path)
    assert _leftovers(tmp_path) == []


def test_every_md5_and_sha256_must_match(fixture_server, tmp_path, monkeypatch):
    files, _ = _serve(fixture_server, "cifar10", monkeypatch)
    rows = [r._replace(digest="0" * 32) if r.algorithm == "md5" else r for r in digest_table(files)]
    monkeypatch.setattr(download_module, "CHECKSUMS", tuple(rows))
    with pytest.raises(DataError, match="md5"):
        load("cifar10", "test", data_dir=tmp_path)


def test_published_table_covers_every_archive_with_well_formed_digests():
    lengths = {"md5": 32, "sha256": 64}
    table = download_module.CHECKSUMS
    for spec in SPECS.values():
        for file in spec.archives:
            algorithms = {r.algorithm for r in table if r.file == file}
            assert "sha256" in algorithms, file
    for row in table:
        assert re.fullmatch(f"[0-9a-f]{{{lengths[row.algorithm]}}}", row.digest), row


@pytest.mark.parametrize(
    ("mirror", "expected"),
    [
        (None, "https://default.example/base/f.gz"),
        ("http://127.0.0.1:9/m", "http://127.0.0.1:9/m/f.gz"),
        ("http://127.0.0.1:9/m/", "http://127.0.0.1:9/m/f.gz"),
    ],
    ids=["default", "mirror", "mirror-trailing-slash"],
)
def test_source_url_honours_bnlab_mirror(mirror, expected, monkeypatch):
    if mirror is None:
        monkeypatch.delenv("BNLAB_MIRROR", raising=False)
    else:
        monkeypatch.setenv("BNLAB_MIRROR", mirror)
    assert download_module.source_url("https://default.example/base/", "f.gz") == expected
