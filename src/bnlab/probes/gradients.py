"""Per-layer gradient statistics (Bjorck et al. 2018, §3.5, Fig. 2).

Bjorck et al. show histograms of a convolution kernel's gradient at initialisation: with
BN a narrow Gaussian-like bump, without BN a spike at 0 with heavy tails ≈100× wider. The
histogram is quantified here by the standard deviation and the excess kurtosis
(PAPERS.md §3.5: Gaussian = 0, heavy tails > 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bnlab.probes import _hist, _passes, _state
from bnlab.probes.base import Probe, ProbeContext, Schedule

__all__ = ["GradientStatsProbe", "gradient_stats"]


def _moments(g: torch.Tensor, bins: int) -> dict[str, torch.Tensor]:
    """Norm, mean, std, excess kurtosis and histogram of g's entries, as device tensors."""
    v = g.detach().double().flatten()  # (numel,)
    mean = v.mean()
    c = v - mean
    m2 = c.pow(2).mean()
    kurt = torch.where(m2 > 0, c.pow(4).mean() / m2.pow(2) - 3.0, torch.nan)
    edges = _hist.edges(v, bins)  # np.histogram's bins over [min, max]
    return {
        "norm": v.norm(),
        "mean": mean,
        "std": m2.sqrt(),
        "kurtosis": kurt,
        "hist": _hist.histogram(v.unsqueeze(0), edges, uniform=True)[0],
        "bin_edges": edges,
    }


def _as_result(stats: dict[str, np.ndarray]) -> dict[str, Any]:
    floats = {k: float(stats[k]) for k in ("norm", "mean", "std", "kurtosis")}
    return {**floats, "hist": stats["hist"], "bin_edges": stats["bin_edges"]}


def gradient_stats(
    model: nn.Module,
    loss_fn: _passes.LossFn,
    batch: _passes.Batch,
    layers: Sequence[str | int] = (1,),
    *,
    bn_mode: str = "train",
    bins: int = 50,
) -> dict[str, dict[str, Any]]:
    """Norm, standard deviation, excess kurtosis and histogram of layer weight gradients.

    For the entries v_j (j = 1..n) of ∂L/∂W of each layer, with population moments
    m_k = mean((v − mean v)^k):

        norm = ‖v‖₂,  std = √m₂,  kurtosis = m₄ / m₂² − 3  (0 for a Gaussian)

    Args:
        model: any ``nn.Module`` (a ``torch.compile``'d one is measured through its
            original module, with a warning).
        loss_fn: ``loss_fn(model(inputs), targets)`` is the loss.
        batch: ``(inputs, targets)``.
        layers: norm-site indices (the conv/linear weight feeding the norm, found from a
            traced forward pass for models that do not declare it), module names or
            parameter names.
        bn_mode: ``"train"`` or ``"eval"``.
        bins: histogram bins over [min, max] of the gradient entries (``np.histogram``'s).

    Returns:
        ``{str(layer): {"norm", "mean", "std", "kurtosis": float, "hist": (bins,) int
        array, "bin_edges": (bins + 1,) float array}}``.

    Raises:
        ValueError: for a layer that did not run in the forward pass (no gradient), a
            norm site without a single feeding layer, or an unknown layer.

    Cost:
        1 forward+backward (plus 1 forward to trace an int site of a model that does not
        declare its sites).
    """
    model = _passes.unwrap(model)
    batch = _passes.unpack_batch(batch)
    targets, _ = _passes.layer_params(model, layers, batch[0], bn_mode)
    with _state.no_trace(model) as replay, _state.bn_mode(model, bn_mode):
        point = dict(model.named_parameters())
        replay()
        wrt = sorted({p for _, p in targets})
        _, grads = _passes.grads_at(model, loss_fn, batch, point, wrt, unused="none")
        _passes.require_gradients(grads, targets)
        stats = {key: _moments(grads[pname], bins) for key, pname in targets}  # type: ignore[arg-type]
    return {key: _as_result(s) for key, s in _passes.to_host(stats).items()}


class GradientStatsProbe(Probe):
    """Log :func:`gradient_stats` at the scheduled steps.

    Logs the metrics ``grad/<layer>/{norm,std,kurtosis}`` and the
    array ``grad/<layer>/hist`` (counts then bin edges, shape (2, bins + 1), counts padded
    with NaN). Cost per call: 1 forward+backward (+1 forward for an int site of a model
    that does not declare its sites, see :func:`gradient_stats`).

    Args:
        layers: as in :func:`gradient_stats`.
        schedule: a :class:`~bnlab.probes.base.Schedule`, or an int n for every n steps.
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).
        bins: histogram bins.
    """

    name = "grad"

    def __init__(
        self,
        layers: Sequence[str | int] = (1,),
        *,
        schedule: Schedule | int = 1,
        bn_mode: str = "train",
        bins: int = 50,
    ) -> None:
        super().__init__(schedule, bn_mode=bn_mode)
        self.layers = list(layers)
        self.bins = bins

    def on_step(self, ctx: ProbeContext) -> None:
        """Measure the gradient statistics on this step's batch and log them."""
        res = gradient_stats(
            ctx.model, ctx.loss_fn, ctx.batch, self.layers, bn_mode=self.bn_mode, bins=self.bins
        )
        for key, stats in res.items():
            for metric in ("norm", "std", "kurtosis"):
                ctx.log(f"{self.name}/{key}/{metric}", stats[metric])
            counts = np.append(stats["hist"].astype(np.float64), np.nan)
            ctx.log(f"{self.name}/{key}/hist", np.stack([counts, stats["bin_edges"]]))
