"""Generated datasets: Gaussian blobs for tests and smoke runs, and Santurkar's DLN task.

Both are pure functions of their arguments: they use private generators and never touch
the global random state.
"""

from __future__ import annotations

import math

import torch

from bnlab.data._seeding import generator, split_stream
from bnlab.data.errors import DataError

__all__ = ["gaussian_linear", "synthetic"]


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; choose 'train' or 'test'")


def synthetic(
    n: int = 1000,
    in_shape: tuple[int, ...] = (1, 28, 28),
    num_classes: int = 10,
    seed: int = 0,
    *,
    split: str = "train",
    spread: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded Gaussian blobs squashed into [0, 1].

    Class means ``m_c ~ N(0, I)`` depend on ``seed`` only (shared by both splits); each
    sample is ``x = sigmoid(m_y + spread * ε)``, ``ε ~ N(0, I)``, drawn from a stream of
    ``(seed, split)``. Labels are balanced (``n // num_classes`` or one more each) and
    shuffled.

    Args:
        n: number of samples.
        in_shape: shape of one input, channels first, e.g. ``(1, 28, 28)`` or ``(1, 40)``.
        num_classes: number of blobs.
        seed: the dataset seed.
        split: ``"train"`` or ``"test"``.
        spread: noise scale relative to the unit spread of the means.

    Returns:
        ``x`` of shape ``(n, *in_shape)`` float32 in (0, 1) and ``y`` of shape ``(n,)`` int64.

    Example:
        >>> x, y = synthetic(8, (1, 4, 4), 2, seed=0)
        >>> x.shape, y.dtype
        (torch.Size([8, 1, 4, 4]), torch.int64)
    """
    _check_split(split)
    if n < 1 or num_classes < 1 or not in_shape or min(in_shape) < 1:
        raise DataError(
            f"synthetic needs n, num_classes and in_shape >= 1, got {n}, {num_classes}, {in_shape}"
        )
    dim = math.prod(in_shape)
    means = torch.randn(num_classes, dim, generator=generator(seed, 0))  # (K, D)
    gen = generator(seed, split_stream(split))
    y = (torch.arange(n) % num_classes)[torch.randperm(n, generator=gen)]  # (n,)
    noise = torch.randn(n, dim, generator=gen)  # (n, D)
    x = torch.sigmoid(means[y] + spread * noise)
    return x.reshape(n, *in_shape), y


def gaussian_linear(
    n: int = 1000,
    dim: int = 10,
    seed: int = 0,
    *,
    out_dim: int | None = None,
    split: str = "train",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Santurkar et al.'s deep-linear-network task (PAPERS.md §2.1): ``y = A x``.

    ``A`` is ``(out_dim, dim)`` with i.i.d. N(0, 1) entries, fixed by ``seed``; inputs
    ``x ~ N(0, I)`` come from a stream of ``(seed, split)``. The paper uses 1,000 samples
    (= the batch, full-batch GD) and 10×10 ``A``; unit variances are our reading, as the
    paper does not state them.

    Returns:
        ``x`` (n, dim) float32 and the float32 targets ``y`` (n, out_dim).

    Example:
        >>> x, y = gaussian_linear(4, 3)
        >>> y.shape
        torch.Size([4, 3])
    """
    _check_split(split)
    out_dim = dim if out_dim is None else out_dim
    if n < 1 or dim < 1 or out_dim < 1:
        raise DataError(f"gaussian_linear needs n, dim, out_dim >= 1, got {n}, {dim}, {out_dim}")
    a = torch.randn(out_dim, dim, generator=generator(seed, 0))  # (out, dim)
    x = torch.randn(n, dim, generator=generator(seed, split_stream(split)))  # (n, dim)
    return x, x @ a.T  # (n, out)
