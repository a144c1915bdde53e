"""An in-memory loader over tensors, plus the tensor-side preprocessing it is used with.

Everything here works on whatever device the tensors live on, so with the data on a GPU
the whole input pipeline (shuffling, cropping, flipping) runs there: no worker processes
and no host round trips (DESIGN.md, "Performance principles").

Example:
    >>> import torch
    >>> x, y = torch.rand(10, 3, 8, 8), torch.arange(10) % 2
    >>> loader = Loader(x, y, 4, seed=1, augment=RandomCropFlip(padding=2))
    >>> len(loader), [xb.shape[0] for xb, _ in loader.epoch(3)]
    (2, [4, 4])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from bnlab.data._seeding import generator
from bnlab.data.errors import DataError

__all__ = ["Loader", "RandomCropFlip", "balanced_subset", "channel_stats", "standardize"]

Batch = tuple[torch.Tensor, torch.Tensor]
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

# Domain tags keep the generator streams of shuffling, augmentation and subsets disjoint.
_ORDER, _AUGMENT, _SUBSET = 101, 102, 103


class Loader:
    """Mini-batches of in-memory tensors, reproducible per epoch.

    The batches of epoch ``e`` are a pure function of ``(seed, e)``: the permutation comes
    from a generator seeded by ``(seed, e)`` and the augmentation of batch ``b`` from one
    seeded by ``(seed, e, b)``. A run resumed after ``step`` updates therefore continues
    with ``loader.epoch(step // len(loader), start=step % len(loader))`` and sees exactly
    the batches it would have seen.

    Args:
        x: inputs, shape (N, ...).
        y: targets, shape (N, ...), on any device.
        batch_size: samples per batch.
        shuffle: permute the samples each epoch (else the stored order).
        drop_last: drop the final incomplete batch (the default, so batch statistics of
            every step are computed over the same number of samples).
        seed: the loader seed.
        augment: ``augment(x_batch, generator) -> x_batch``, e.g. :class:`RandomCropFlip`;
            the generator lives on the device of ``x``.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        augment: Augment | None = None,
    ) -> None:
        if x.shape[0] != y.shape[0]:
            raise DataError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        if drop_last and x.shape[0] < batch_size:
            raise DataError(
                f"{x.shape[0]} samples make no full batch of {batch_size}; lower batch_size "
                "or pass drop_last=False"
            )
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.seed = seed
        self.augment = augment

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self, e: int) -> torch.Tensor:
        n = self.x.shape[0]
        if not self.shuffle:
            return torch.arange(n, device=self.x.device)
        # The permutation is drawn on the CPU so it is the same on every device.
        perm = torch.randperm(n, generator=generator(self.seed, _ORDER, e))
        return perm.to(self.x.device)

    def epoch(self, e: int, start: int = 0) -> Iterator[Batch]:
        """Yield the batches of epoch ``e`` from batch index ``start`` on.

        Raises:
            DataError: ``e`` is negative or ``start`` is outside ``[0, len(self)]``.
        """
        if e < 0 or not 0 <= start <= len(self):
            raise DataError(f"epoch({e}, start={start}): need e >= 0 and 0 <= start <= {len(self)}")
        return self._batches(e, start)

    def _batches(self, e: int, start: int) -> Iterator[Batch]:
        order = self._order(e)
        for b in range(start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            xb, yb = self.x[idx], self.y[idx.to(self.y.device)]
            if self.augment is not None:
                xb = self.augment(xb, generator(self.seed, _AUGMENT, e, b, device=xb.device))
            yield xb, yb

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch(0)

    def __repr__(self) -> str:
        return (
            f"Loader(n={self.x.shape[0]}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, seed={self.seed}, augment={self.augment!r})"
        )


def _crop_flip(x: torch.Tensor, padding: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad each spatial dim, cut a random window, maybe reverse the last dim: one gather.

    Draws, in this order: window offsets (N, n_spatial) in ``[0, 2 * padding]``, then, if
    ``flip``, coins (N,) with ``u < 1/2`` meaning "flip". Flipping the crop equals reading
    the window's last-dim positions backwards, so both fold into a single index.
    """
    n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
    padded = F.pad(x, (padding,) * (2 * len(spatial))) if padding else x
    offsets = torch.randint(0, 2 * padding + 1, (n, len(spatial)), generator=gen, device=x.device)
    last = torch.arange(spatial[-1], device=x.device).expand(n, -1)  # (N, W)
    if flip:
        coins = torch.rand(n, generator=gen, device=x.device) < 0.5  # (N,)
        last = torch.where(coins[:, None], spatial[-1] - 1 - last, last)
    index = torch.zeros(n, 1, dtype=torch.long, device=x.device)  # (N, 1) flat offsets
    stride = 1
    for k in reversed(range(len(spatial))):
        pos = last if k == len(spatial) - 1 else torch.arange(spatial[k], device=x.device)
        pos = (offsets[:, k, None] + pos) * stride  # (N, size_k)
        # (N, prod(later sizes)) -> (N, size_k * prod(later sizes)), row-major
        index = (pos[:, :, None] + index[:, None, :]).flatten(1)
        stride *= padded.shape[2 + k]
    flat = padded.flatten(2)  # (N, C, prod(padded spatial))
    out = flat.gather(2, index[:, None, :].expand(n, c, -1))  # (N, C, prod(spatial))
    return out.view(x.shape)


class RandomCropFlip:
    """Random crop with zero padding, then a random horizontal flip, per sample.

    For images (N, C, H, W) this is the usual CIFAR augmentation (pad 4, crop 32, flip the
    width axis with probability 1/2). For signals (N, C, L) the crop shifts along ``L`` and
    the flip reverses ``L``. Inputs of rank 2 (N, D) have nothing to crop and are refused.

    Args:
        padding: zero padding on each side of each spatial dim (0: no crop).
        flip: flip the last dim with probability 1/2.
    """

    def __init__(self, padding: int = 4, flip: bool = True) -> None:
        if padding < 0:
            raise DataError(f"padding must be >= 0, got {padding}")
        self.padding, self.flip = padding, flip

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Augment a batch ``x`` of shape (N, C, *spatial) with draws from ``gen``."""
        if x.ndim < 3:
            raise DataError(f"RandomCropFlip needs (N, C, L) or (N, C, H, W), got {tuple(x.shape)}")
        if not self.padding and not self.flip:
            return x
        return _crop_flip(x, self.padding, self.flip, gen)

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding}, flip={self.flip})"


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std of ``x`` (N, C, ...), over N and every spatial dim.

    Sums are accumulated in float64 over chunks of ``chunk`` samples, so memory stays
    bounded on large sets (CIFAR-10 train is 600 MB in float32).

    Returns:
        ``mean`` and ``std``, each (C,), float32, on the device of ``x``.
    """
    if x.ndim < 2 or x.shape[0] == 0:
        raise DataError(f"channel_stats needs a non-empty (N, C, ...) tensor, got {tuple(x.shape)}")
    dims = [0, *range(2, x.ndim)]
    total = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    total_sq = torch.zeros_like(total)
    for part in x.split(chunk):
        part64 = part.double()
        total += part64.sum(dims)  # (C,)
        total_sq += part64.square().sum(dims)  # (C,)
    count = x.numel() // x.shape[1]
    mean = total / count
    var = (total_sq / count - mean.square()).clamp_min(0.0)
    return mean.float(), var.sqrt().float()


def standardize(
    x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-12
) -> torch.Tensor:
    """Return ``(x - mean_c) / std_c`` per channel (dim 1); use the *training* statistics.

    A constant channel (std 0) maps to 0 rather than NaN (``std`` is clamped to ``eps``).
    """
    view = (1, -1, *[1] * (x.ndim - 2))
    return (x - mean.view(view)) / std.clamp_min(eps).view(view)


def balanced_subset(
    x: torch.Tensor, y: torch.Tensor, per_class: int, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick ``per_class`` random samples of every class present in ``y``, then shuffle.

    Use it for quick scales: CIFAR-10 in ``BNLAB_DATA`` is sorted by class, so a plain
    prefix would hold one class only.

    Returns:
        ``(x_sub, y_sub)`` with ``per_class * num_classes`` samples in a seeded random order.

    Raises:
        DataError: a class has fewer than ``per_class`` samples.
    """
    y_cpu = y.cpu()
    picks = []
    for c in torch.unique(y_cpu).tolist():
        members = torch.nonzero(y_cpu == c).flatten()
        if members.numel() < per_class:
            raise DataError(
                f"class {c} has {members.numel()} samples, fewer than per_class={per_class}"
            )
        order = torch.randperm(members.numel(), generator=generator(seed, _SUBSET, int(c)))
        picks.append(members[order[:per_class]])
    idx = torch.cat(picks)
    idx = idx[torch.randperm(idx.numel(), generator=generator(seed, _SUBSET, -1))]
    return x[idx.to(x.device)], y[idx.to(y.device)]
