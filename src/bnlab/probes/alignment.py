"""Output-gradient alignment: are gradients input-independent (Bjorck et al. 2018, Fig. 6)?

Without BN, Bjorck et al. find that at initialisation the network predicts one class for
almost every input, so ∂L/∂logits has the same sign pattern for every sample and the
per-sample contributions to a weight gradient add up instead of cancelling. The alignment

    A = |Σ_s g_s| / Σ_s |g_s|   ∈ [0, 1]

is 1 when the summands g_s all point the same way and small when they cancel. For a
conv/linear weight the summands are δ_{b,p} ⊗ u_{b,p}, one per sample b and position p
(δ = ∂L/∂output, u = the input patch), read from hooks in the *single* train-mode backward,
so BN's coupling of the batch is exactly that of training (never BN recomputed per sample).
Because |δ·u| = |δ|·|u|, Σ_s |g_s| = |δ|ᵀ|u| is one extra matrix product, and no per-sample
gradient is ever materialized.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bnlab.probes import _passes, _state
from bnlab.probes.base import Probe, ProbeContext

__all__ = ["AlignmentProbe", "output_gradient_alignment"]


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), torch.nan)


def _rows(module: nn.Module, u: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Input patches and output gradients as (S, in) and (S, out), S = samples × positions."""
    if isinstance(module, nn.Linear):
        return u.reshape(-1, u.shape[-1]), delta.reshape(-1, delta.shape[-1])
    if isinstance(module, (nn.Conv1d, nn.Conv2d)) and module.groups == 1:
        two_d = isinstance(module, nn.Conv2d)
        u4 = u if two_d else u.unsqueeze(2)  # (N, C, L) -> (N, C, 1, L)
        d4 = delta if two_d else delta.unsqueeze(2)
        # A Conv1d is a Conv2d over a height of 1: kernel, stride and dilation 1 and no
        # padding along that height.
        k, s, p, d = (
            (a if two_d else (one, a[0]))
            for a, one in ((module.kernel_size, 1), (module.stride, 1), (module.padding, 0),
                           (module.dilation, 1))
        )
        if isinstance(p, str):
            raise ValueError("alignment needs numeric conv padding, not padding='same'/'valid'")
        cols = F.unfold(u4, k, dilation=d, padding=p, stride=s)  # (N, C·kh·kw, P)
        rows_u = cols.transpose(1, 2).reshape(-1, cols.shape[1])  # (N·P, C·kh·kw)
        rows_d = d4.flatten(2).transpose(1, 2).reshape(-1, d4.shape[1])  # (N·P, out)
        return rows_u, rows_d
    raise ValueError(
        "alignment of a parameter needs an nn.Linear or a groups=1 nn.Conv1d/2d, "
        f"got {type(module).__name__}"
    )


def _param_alignment(
    module: nn.Module, which: str, u: torch.Tensor, delta: torch.Tensor
) -> dict[str, float]:
    cols, d = (t.double() for t in _rows(module, u, delta))  # (S, in), (S, out)
    if which == "bias":
        summed, absolute = d.sum(0), d.abs().sum(0)  # (out,)
    else:
        summed = d.T @ cols  # (out, in): the ordinary weight gradient
        absolute = d.abs().T @ cols.abs()  # Σ_s |δ_s ⊗ u_s|, since |δu| = |δ||u|
    a = _ratio(summed.abs(), absolute).flatten()
    return {
        "aggregate": float(summed.abs().sum() / absolute.sum()),
        "mean": float(a.nanmean()),
        "median": float(a.nanmedian()),
    }


def _resolve_param(model: nn.Module, param: str | int) -> tuple[str, nn.Module, str]:
    _, pname = _passes.layer_param(model, param)
    owner, _, which = pname.rpartition(".")
    module = dict(model.named_modules())[owner]
    if which not in ("weight", "bias"):
        raise ValueError(f"alignment is defined for a layer's weight or bias, got {pname!r}")
    return pname, module, which


def output_gradient_alignment(
    model: nn.Module,
    loss_fn: _passes.LossFn,
    batch: _passes.Batch,
    *,
    param: str | int | None = None,
    bn_mode: str = "train",
) -> dict[str, Any]:
    """∂L/∂logits and the alignment of per-sample gradient summands (Bjorck Fig. 6).

    With logits z (N, C) and δ = ∂L/∂z:

        A_c = |Σ_b δ_{b,c}| / Σ_b |δ_{b,c}|                 (per logit c)
        A_j = |Σ_{b,p} g_{b,p,j}| / Σ_{b,p} |g_{b,p,j}|     (per entry j of ``param``)

    Args:
        model: any ``nn.Module`` whose output is (N, C) logits.
        loss_fn: ``loss_fn(model(inputs), targets)`` is the loss.
        batch: ``(inputs, targets)``.
        param: a conv/linear ``weight``/``bias`` by parameter name, module name (its
            weight) or norm-site index (the feeding layer's weight); ``None`` for the
            logits only.
        bn_mode: ``"train"`` or ``"eval"``.

    Returns:
        ``{"dlogits": (N, C) array, "logit_alignment": (C,) array, "mode_class": int,
        "mode_fraction": the fraction of the batch predicted as the most common class,
        "positive_fraction": (C,) fraction of samples with δ_{b,c} > 0}``, and when
        ``param`` is given ``"param": name`` and ``"param_alignment": {"aggregate":
        Σ_j|Σ_s g_sj| / Σ_j Σ_s|g_sj|, "mean", "median" of A_j}``.

    Cost:
        1 forward+backward, plus two matrix products the size of ``param``'s gradient.
    """
    x, y = _passes.unpack_batch(batch)
    target = None if param is None else _resolve_param(model, param)
    seen: dict[str, torch.Tensor] = {}
    with _state.no_trace(model) as replay, _state.bn_mode(model, bn_mode):
        handle = target[1].register_forward_hook(_capture(seen)) if target else None
        try:
            replay()
            logits = model(x)  # (N, C)
        finally:
            if handle is not None:
                handle.remove()
        wrt = [logits] + ([seen["output"]] if target else [])
        grads = torch.autograd.grad(loss_fn(logits, y), wrt)  # the one backward
    result = _logit_summary(logits.detach(), grads[0].detach())
    if target is not None:
        pname, module, which = target
        result["param"] = pname
        result["param_alignment"] = _param_alignment(module, which, seen["input"], grads[1])
    return result


def _capture(seen: dict[str, torch.Tensor]) -> Any:
    """A forward hook keeping the layer's input u and its output (to ask for ∂L/∂output)."""

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if "output" in seen:
            raise ValueError("the chosen layer runs more than once per forward; pick another")
        seen["input"], seen["output"] = inputs[0].detach(), output

    return hook


def _logit_summary(logits: torch.Tensor, dlogits: torch.Tensor) -> dict[str, Any]:
    d = dlogits.double()  # (N, C)
    pred = logits.argmax(dim=1)  # (N,)
    counts = torch.bincount(pred, minlength=logits.shape[1])
    return {
        "dlogits": d.cpu().numpy(),
        "logit_alignment": _ratio(d.sum(0).abs(), d.abs().sum(0)).cpu().numpy(),
        "mode_class": int(counts.argmax()),
        "mode_fraction": float(counts.max()) / len(pred),
        "positive_fraction": (d > 0).double().mean(0).cpu().numpy(),
    }


class AlignmentProbe(Probe):
    """Log :func:`output_gradient_alignment` at the scheduled steps.

    Logs the arrays ``align/dlogits`` (N, C) and ``align/logit_alignment`` (C,), the
    metric ``align/mode_fraction`` and, with ``param``, ``align/param_aggregate`` and
    ``align/param_median``. Cost: 1 forward+backward.
    """

    name = "align"

    def __init__(
        self,
        param: str | int | None = None,
        every: int = 1,
        *,
        start: int = 0,
        steps: Sequence[int] | None = None,
        bn_mode: str = "train",
    ) -> None:
        super().__init__(every, start=start, steps=steps)
        self.param = param
        self.bn_mode = bn_mode

    def on_step(self, ctx: ProbeContext) -> None:
        """Measure on this step's batch and log."""
        res = output_gradient_alignment(
            ctx.model, ctx.loss_fn, ctx.batch, param=self.param, bn_mode=self.bn_mode
        )
        ctx.log(f"{self.name}/dlogits", res["dlogits"])
        ctx.log(f"{self.name}/logit_alignment", res["logit_alignment"])
        ctx.log(f"{self.name}/mode_fraction", res["mode_fraction"])
        if "param_alignment" in res:
            ctx.log(f"{self.name}/param_aggregate", res["param_alignment"]["aggregate"])
            ctx.log(f"{self.name}/param_median", res["param_alignment"]["median"])
