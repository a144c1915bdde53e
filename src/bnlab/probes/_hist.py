"""Histograms on the device, bin for bin as ``numpy.histogram`` counts them.

Activation and gradient histograms are computed where the tensors live, with no host
round trip for the range: the edges follow ``numpy.linspace`` step for step and the counts
follow numpy's bin convention (bin i holds e_i <= v < e_{i+1}, the last bin is closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch

from bnlab.probes import _passes

__all__ = ["edges", "histogram"]


def edges(values: torch.Tensor, bins: int | Sequence[float]) -> torch.Tensor:
    """(B+1,) float64 edges on ``values.device``: explicit ones, or ``bins`` equal bins.

    Equal bins span [min, max] of the finite values (all rows together), widened by 0.5 on
    each side when that range is a single value (numpy's convention), [0, 1] when no value
    is finite; computed as ``numpy.linspace`` does (start + i·step, the last edge = max).

    Raises:
        ValueError: for ``bins < 1`` or explicit edges that are not >= 2 increasing numbers.
    """
    if not isinstance(bins, int):
        given = [float(b) for b in bins]  # checked as Python numbers, then moved once
        if len(given) < 2 or any(b <= a for a, b in pairwise(given)):
            raise ValueError("bins as edges must be at least two strictly increasing numbers")
        return _passes.device_tensor(given, torch.float64, values.device)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    v = values.double()
    inf = torch.full((), float("inf"), dtype=torch.float64, device=v.device)
    finite = torch.isfinite(v)
    lo = torch.where(finite, v, inf).amin()
    hi = torch.where(finite, v, -inf).amax()
    empty = ~torch.isfinite(lo)  # no finite value at all
    lo, hi = torch.where(empty, 0.0, lo), torch.where(empty, 1.0, hi)
    same = lo == hi
    lo, hi = torch.where(same, lo - 0.5, lo), torch.where(same, hi + 0.5, hi)
    step = (hi - lo) / bins
    out = torch.arange(bins + 1, dtype=torch.float64, device=v.device) * step + lo
    out[-1] = hi
    return out


def histogram(values: torch.Tensor, edges: torch.Tensor, uniform: bool) -> torch.Tensor:
    """(C, M), (B+1,) -> (C, B) int64 counts per row with numpy's bin convention.

    Bin i holds e_i <= v < e_{i+1}; the last bin also holds e_B; values outside the edges
    and NaN are not counted. Uniform edges take numpy's own fast path: the index is
    computed arithmetically, then moved by one where rounding put a value on the wrong side
    of its edge, so the counts equal ``np.histogram``'s.
    """
    values = values.double()
    nbins = edges.numel() - 1
    if uniform:
        lo, hi = edges[0], edges[-1]
        idx = ((values - lo) * (nbins / (hi - lo))).floor().clamp_(-1, nbins).long()
        idx = torch.where(values == hi, nbins - 1, idx)  # the last bin is closed
        safe = idx.clamp(0, nbins - 1)
        idx = idx - (values < edges[safe]).long()  # rounded up past the lower edge
        idx = idx + ((values >= edges[safe + 1]) & (safe != nbins - 1)).long()
    else:
        idx = torch.searchsorted(edges, values.contiguous(), right=True) - 1  # (C, M)
        idx = torch.where(values == edges[-1], nbins - 1, idx)  # the last bin is closed
    inside = (idx >= 0) & (idx < nbins) & ~torch.isnan(values)
    counts = torch.zeros(values.shape[0], nbins + 1, dtype=torch.int64, device=values.device)
    counts.scatter_add_(1, torch.where(inside, idx, nbins), torch.ones_like(idx))
    return counts[:, :nbins]
