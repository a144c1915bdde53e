"""Loader, augmentation, standardization and subsets, against plain loops and torch built-ins."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from bnlab.data import (
    DataError,
    Loader,
    RandomCropFlip,
    balanced_subset,
    channel_stats,
    standardize,
)


def _data(n: int = 23, shape: tuple[int, ...] = (2, 5, 6)) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(n * int(np.prod(shape)), dtype=torch.float32).reshape(n, *shape)
    return x, torch.arange(n)  # y = sample id, so batches reveal their indices


@pytest.mark.parametrize(
    ("n", "batch", "drop_last", "expected"),
    [(23, 5, True, 4), (23, 5, False, 5), (20, 5, True, 4), (20, 5, False, 4), (5, 5, True, 1)],
    ids=["drop", "keep", "exact-drop", "exact-keep", "one-batch"],
)
def test_len_and_batch_sizes(n, batch, drop_last, expected):
    x, y = _data(n)
    loader = Loader(x, y, batch, drop_last=drop_last)
    sizes = [len(yb) for _, yb in loader.epoch(0)]
    assert len(loader) == expected == len(sizes)
    assert sizes[:-1] == [batch] * (expected - 1)
    assert sizes[-1] == (batch if drop_last else n - batch * (expected - 1))


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffle", "ordered"])
def test_epoch_without_drop_visits_every_sample_once(shuffle):
    x, y = _data()
    loader = Loader(x, y, 5, drop_last=False, shuffle=shuffle, seed=3)
    seen = torch.cat([yb for _, yb in loader.epoch(2)])
    assert sorted(seen.tolist()) == list(range(23))
    assert (seen.tolist() == list(range(23))) is not shuffle
    for xb, yb in loader.epoch(2):
        torch.testing.assert_close(xb, x[yb], rtol=0, atol=0)  # inputs stay paired with targets


def _ids(loader: Loader, e: int, start: int = 0) -> list[list[int]]:
    return [yb.tolist() for _, yb in loader.epoch(e, start)]


def test_epoch_is_a_pure_function_of_seed_and_epoch():
    x, y = _data()
    a, b = Loader(x, y, 4, seed=7), Loader(x, y, 4, seed=7)
    random.seed(0)
    torch.manual_seed(0)
    first = _ids(a, 5)
    _ids(a, 1)  # other epochs in between change nothing
    torch.manual_seed(123)  # nor does the global RNG
    assert _ids(a, 5) == first == _ids(b, 5)
    assert _ids(a, 6) != first
    assert _ids(Loader(x, y, 4, seed=8), 5) != first
    assert _ids(a, 0) == [yb.tolist() for _, yb in a]  # iter(loader) is epoch 0


def test_loader_leaves_global_rng_untouched():
    x, y = _data()
    loader = Loader(x, y, 4, augment=RandomCropFlip(1))
    torch.manual_seed(5)
    state = torch.get_rng_state()
    list(loader.epoch(3))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("start", [0, 1, 3, 5], ids=lambda s: f"start{s}")
def test_resume_from_start_matches_the_full_epoch_with_augmentation(start):
    x, y = _data()
    loader = Loader(x, y, 4, seed=2, augment=RandomCropFlip(padding=2))
    full = list(loader.epoch(4))
    resumed = list(Loader(x, y, 4, seed=2, augment=RandomCropFlip(padding=2)).epoch(4, start))
    assert len(resumed) == len(full) - start
    for (xa, ya), (xb, yb) in zip(full[start:], resumed, strict=True):
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        torch.testing.assert_close(ya, yb, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": torch.zeros(3, 2), "y": torch.zeros(4), "batch_size": 1}, "samples"),
        ({"x": torch.zeros(3, 2), "y": torch.zeros(3), "batch_size": 0}, "batch_size"),
        ({"x": torch.zeros(3, 2), "y": torch.zeros(3), "batch_size": 4}, "no full batch"),
    ],
    ids=["length-mismatch", "zero-batch", "too-few-for-drop-last"],
)
def test_loader_rejects_bad_arguments(kwargs, match):
    x, y, b = kwargs["x"], kwargs["y"], kwargs["batch_size"]
    with pytest.raises(DataError, match=match):
        Loader(x, y, b)


@pytest.mark.parametrize(
    ("e", "start"), [(-1, 0), (0, -1), (0, 6)], ids=["neg-epoch", "neg", "past"]
)
def test_epoch_rejects_bad_positions(e, start):
    x, y = _data()
    with pytest.raises(DataError, match="start"):
        Loader(x, y, 4).epoch(e, start)


def _reference_crop_flip(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Per-sample loop with the documented draws: offsets (N, dims), then flip coins (N,)."""
    n, spatial = x.shape[0], x.shape[2:]
    offsets = torch.randint(0, 2 * padding + 1, (n, len(spatial)), generator=gen)
    coins = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        padded = torch.zeros(x.shape[1], *(s + 2 * padding for s in spatial))
        padded[(slice(None), *(slice(padding, padding + s) for s in spatial))] = x[i]
        window = tuple(slice(int(o), int(o) + s) for o, s in zip(offsets[i], spatial, strict=True))
        crop = padded[(slice(None), *window)]
        out[i] = crop.flip(-1) if coins[i] else crop
    return out


@pytest.mark.parametrize("shape", [(7, 3, 6, 5), (9, 2, 11)], ids=["image", "signal"])
def test_random_crop_flip_matches_a_per_sample_loop(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    got = RandomCropFlip(padding=2)(x, torch.Generator().manual_seed(11))
    ref = _reference_crop_flip(x, 2, torch.Generator().manual_seed(11))
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_every_augmented_image_is_a_shifted_possibly_flipped_copy():
    x = torch.rand(64, 1, 4, 4, generator=torch.Generator().manual_seed(1)) + 1.0  # no zeros
    out = RandomCropFlip(padding=1)(x, torch.Generator().manual_seed(2))
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    flips = 0
    for i in range(64):
        crops = [padded[i, :, r : r + 4, c : c + 4] for r in range(3) for c in range(3)]
        plain = any(torch.equal(out[i], crop) for crop in crops)
        flipped = any(torch.equal(out[i], crop.flip(-1)) for crop in crops)
        assert plain or flipped, i
        flips += flipped and not plain
    assert 16 <= flips <= 48  # about half of 64 (binomial, p = 1/2: ±4 sd)


def test_crop_flip_disabled_is_identity_and_rank2_is_refused():
    x = torch.rand(4, 3, 5, 5)
    torch.testing.assert_close(RandomCropFlip(0, flip=False)(x, torch.Generator()), x)
    with pytest.raises(DataError, match="RandomCropFlip"):
        RandomCropFlip()(torch.rand(4, 3), torch.Generator())


@pytest.mark.parametrize(
    "shape", [(10, 3, 4, 4), (10, 2, 7), (10, 5)], ids=["image", "signal", "flat"]
)
def test_channel_stats_match_float64_reference(shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 3 + 1
    mean, std = channel_stats(x, chunk=3)  # several chunks, the last one short
    dims = [0, *range(2, x.ndim)]
    torch.testing.assert_close(mean.double(), x.double().mean(dims), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(
        std.double(), x.double().std(dims, correction=0), rtol=1e-5, atol=1e-6
    )


def test_standardize_gives_zero_mean_unit_std_and_handles_constant_channels():
    x = torch.rand(50, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    x[:, 2] = 0.25  # constant channel
    z = standardize(x, *channel_stats(x))
    torch.testing.assert_close(z[:, :2].mean((0, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        z[:, :2].std((0, 2, 3), correction=0), torch.ones(2), atol=1e-5, rtol=0
    )
    assert torch.equal(z[:, 2], torch.zeros_like(z[:, 2]))


def test_balanced_subset_picks_per_class_pairs_deterministically():
    y = torch.tensor([0] * 10 + [1] * 6 + [2] * 8)  # sorted by class, like cifar10.npz
    x = torch.arange(len(y)).float().unsqueeze(1) * 10 + y.unsqueeze(1)  # row encodes its label
    xs, ys = balanced_subset(x, y, 5, seed=4)
    assert torch.bincount(ys).tolist() == [5, 5, 5]
    torch.testing.assert_close(xs[:, 0] % 10, ys.float(), rtol=0, atol=0)  # pairs kept
    assert len(set(xs[:, 0].tolist())) == 15  # no sample twice
    assert ys.tolist() != sorted(ys.tolist())  # shuffled, not class blocks
    xs2, _ = balanced_subset(x, y, 5, seed=4)
    assert torch.equal(xs, xs2)
    assert not torch.equal(xs, balanced_subset(x, y, 5, seed=5)[0])
    with pytest.raises(DataError, match="class 1 has 6"):
        balanced_subset(x, y, 7)


def test_augmentation_draws_differ_between_batches_and_epochs():
    x = torch.rand(1, 1, 6, 6).expand(32, -1, -1, -1).clone()  # 32 copies of one image
    loader = Loader(x, torch.zeros(32), 8, shuffle=False, augment=RandomCropFlip(padding=2))
    first = [xb for xb, _ in loader.epoch(0)]
    assert not torch.equal(first[0], first[1])  # fresh draws for every batch
    assert not torch.equal(first[0], next(iter(loader.epoch(1)))[0])  # and every epoch
