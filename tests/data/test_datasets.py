"""load(): npz files, data-dir resolution, generated sets (mnist1d, synthetic, gaussian_linear)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from bnlab.data import DataError, gaussian_linear, list_datasets, load, resolve_data_dir, synthetic
from bnlab.data import mnist1d as mnist1d_module


def _write_npz(path: Path, image_shape: tuple[int, ...], n=(6, 4), seed=0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n[0], *image_shape), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n[0], dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n[1], *image_shape), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n[1], dtype=np.uint8),
    }
    np.savez_compressed(path, **arrays)
    return arrays


@pytest.mark.parametrize(
    ("name", "image_shape", "x_shape"),
    [("mnist", (28, 28), (1, 28, 28)), ("cifar10", (32, 32, 3), (3, 32, 32))],
    ids=["mnist", "cifar10"],
)
@pytest.mark.parametrize("split", ["train", "test"])
def test_npz_in_data_dir_loads_as_float_chw(
    name, image_shape, x_shape, split, tmp_path, monkeypatch
):
    monkeypatch.setenv("BNLAB_MIRROR", "http://127.0.0.1:9/never-used")
    arrays = _write_npz(tmp_path / f"{name}.npz", image_shape)
    x, y = load(name, split, data_dir=tmp_path)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape[1:] == x_shape and x.is_contiguous()
    ref = arrays[f"x_{split}"].astype(np.float64) / 255.0
    ref = ref[:, None] if name == "mnist" else ref.transpose(0, 3, 1, 2)  # HWC -> CHW
    np.testing.assert_allclose(x.double().numpy(), ref, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(y.numpy(), arrays[f"y_{split}"])


def test_bnlab_data_is_used_when_no_argument(tmp_path, monkeypatch):
    _write_npz(tmp_path / "mnist.npz", (28, 28), n=(3, 2))
    monkeypatch.setenv("BNLAB_DATA", str(tmp_path))
    assert load("mnist", "test")[0].shape == (2, 1, 28, 28)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("garbage", "cannot read"),
        ("missing_key", "lacks the arrays"),
        ("wrong_dtype", "expected uint8"),
        ("bad_label", "labels outside"),
    ],
    ids=["garbage", "missing-key", "wrong-dtype", "bad-label"],
)
def test_corrupt_npz_raises_data_error_naming_path_and_fix(bad, match, tmp_path):
    path = tmp_path / "mnist.npz"
    x, y = np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.uint8)
    if bad == "garbage":
        path.write_bytes(b"PK\x03\x04 not really a zip file")
    elif bad == "missing_key":
        np.savez(path, x_train=x, y_train=y)
    elif bad == "wrong_dtype":
        np.savez(path, x_train=x.astype(np.float32), y_train=y, x_test=x, y_test=y)
    else:
        np.savez(path, x_train=x, y_train=y + 10, x_test=x, y_test=y)
    with pytest.raises(DataError, match=match) as info:
        load("mnist", "train", data_dir=tmp_path)
    assert str(path) in str(info.value) and "delete" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("name", "split", "kwargs", "match"),
    [
        ("imagenet", "train", {}, "unknown dataset"),
        ("mnist", "val", {}, "unknown split"),
        ("mnist", "train", {"n": 3}, "takes no options"),
        ("mnist1d", "train", {"bogus": 1}, "unknown mnist1d option"),
    ],
    ids=["name", "split", "options", "mnist1d-option"],
)
def test_bad_requests_raise_data_error(name, split, kwargs, match, tmp_path):
    with pytest.raises(DataError, match=match):
        load(name, split, data_dir=tmp_path, **kwargs)


def test_list_datasets():
    assert list_datasets() == ["cifar10", "gaussian_linear", "mnist", "mnist1d", "synthetic"]


@pytest.mark.parametrize(
    ("arg", "env", "xdg", "expected"),
    [
        ("a", "b", "c", "a"),
        (None, "b", "c", "b"),
        (None, None, "c", "c/bnlab"),
        (None, None, None, "home/.cache/bnlab"),
    ],
    ids=["argument", "BNLAB_DATA", "XDG_CACHE_HOME", "home-cache"],
)
def test_data_dir_resolution_order(arg, env, xdg, expected, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var, value in (("BNLAB_DATA", env), ("XDG_CACHE_HOME", xdg)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, str(tmp_path / value))
    got = resolve_data_dir(None if arg is None else tmp_path / arg)
    assert got == tmp_path / expected


def _global_states():
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _assert_same_states(before, after):
    assert before[0] == after[0]
    assert before[1][0] == after[1][0] and np.array_equal(before[1][1], after[1][1])
    assert before[1][2:] == after[1][2:]
    assert torch.equal(before[2], after[2])


def test_mnist1d_is_generated_cached_and_leaves_global_rng_untouched(tmp_path, monkeypatch):
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    random.random(), np.random.rand(), torch.rand(1)  # mid-stream states, not fresh seeds
    before = _global_states()
    x, y = load("mnist1d", "train", data_dir=tmp_path, num_samples=200, seed=3)
    _assert_same_states(before, _global_states())
    xt, yt = load("mnist1d", "test", data_dir=tmp_path, num_samples=200, seed=3)
    assert x.shape == (160, 1, 40) and xt.shape == (40, 1, 40)  # the package's 80/20 split
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(min(x.min(), xt.min())) == 0.0 and float(max(x.max(), xt.max())) == 1.0
    assert torch.bincount(torch.cat([y, yt]), minlength=10).tolist() == [20] * 10
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 1
    # The cache is used: generation would now fail.
    monkeypatch.setattr(mnist1d_module, "_generate", _raise)
    x2, _ = load("mnist1d", "train", data_dir=tmp_path, num_samples=200, seed=3)
    assert torch.equal(x, x2)


def _raise(*args, **kwargs):
    raise AssertionError("regenerated instead of reading the cache")


def test_mnist1d_matches_the_package_up_to_the_documented_affine_map(tmp_path):
    from mnist1d.data import get_dataset_args, make_dataset
    from mnist1d.utils import ObjectView

    args = get_dataset_args(as_dict=True)
    args.update(num_samples=100, seed=5)
    state = np.random.get_state()
    ref = make_dataset(ObjectView(args))
    np.random.set_state(state)
    raw, _ = load("mnist1d", "train", data_dir=tmp_path, num_samples=100, seed=5, unit_range=False)
    np.testing.assert_allclose(raw[:, 0].numpy(), ref["x"], rtol=1e-6, atol=1e-6)
    x, y = load("mnist1d", "train", data_dir=tmp_path, num_samples=100, seed=5)
    lo = min(ref["x"].min(), ref["x_test"].min())
    hi = max(ref["x"].max(), ref["x_test"].max())
    np.testing.assert_allclose(x[:, 0].double().numpy(), (ref["x"] - lo) / (hi - lo), atol=1e-6)
    np.testing.assert_array_equal(y.numpy(), ref["y"])


def test_synthetic_blobs_are_seeded_balanced_and_in_unit_range():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    x, y = synthetic(60, (2, 3, 3), 4, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert x.shape == (60, 2, 3, 3) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0 < float(x.min()) and float(x.max()) < 1
    assert torch.bincount(y).tolist() == [15] * 4
    assert torch.equal(x, synthetic(60, (2, 3, 3), 4, seed=1)[0])
    assert not torch.equal(x, synthetic(60, (2, 3, 3), 4, seed=2)[0])
    xt, _ = load("synthetic", "test", n=60, in_shape=(2, 3, 3), num_classes=4, seed=1)
    assert not torch.equal(x, xt)


def test_synthetic_train_and_test_share_class_means():
    x, y = synthetic(4000, (8,), 2, seed=0, spread=0.3)
    xt, yt = synthetic(4000, (8,), 2, seed=0, split="test", spread=0.3)
    for c in range(2):
        torch.testing.assert_close(x[y == c].mean(0), xt[yt == c].mean(0), atol=0.02, rtol=0)
    assert (x[y == 0].mean(0) - x[y == 1].mean(0)).abs().max() > 0.1  # classes differ


def test_gaussian_linear_is_an_exact_linear_map_shared_by_splits():
    x, y = load("gaussian_linear", "train")
    assert x.shape == (1000, 10) and y.shape == (1000, 10) and y.dtype == torch.float32
    xt, yt = gaussian_linear(50, 10, split="test")
    # Recover A by float64 least squares from each split; both must agree, with no residual.
    a_train = torch.linalg.lstsq(x.double(), y.double()).solution
    a_test = torch.linalg.lstsq(xt.double(), yt.double()).solution
    torch.testing.assert_close(a_train, a_test, atol=1e-4, rtol=0)
    torch.testing.assert_close(x.double() @ a_train, y.double(), atol=1e-4, rtol=0)
    assert abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1) < 0.05  # x ~ N(0, I)
    x5, y5 = gaussian_linear(30, 5, seed=1, out_dim=2)
    assert x5.shape == (30, 5) and y5.shape == (30, 2)
    assert not torch.equal(gaussian_linear(30, 5, seed=2, out_dim=2)[1], y5)
