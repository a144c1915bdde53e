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

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bnlab.probes import _passes, _state
from bnlab.probes.base import Probe, ProbeContext, Schedule

__all__ = ["AlignmentProbe", "output_gradient_alignment"]


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), torch.nan)


def _check_supported(module: nn.Module) -> None:
    """Refuse, before any pass runs, a layer whose summands :func:`_rows` cannot form."""
    if isinstance(module, nn.Linear):
        return
    groups = getattr(module, "groups", 1)
    if isinstance(module, nn.modules.conv._ConvNd) and groups != 1:
        raise ValueError(
            f"alignment does not support grouped or depthwise convolutions (groups={groups}): "
            "each output channel sees only its own group of input channels, so the per-sample "
            "summands are not one outer product of the output gradient and the whole input "
            "patch, which is how this probe computes them; name a groups=1 conv or a linear layer"
        )
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        if isinstance(module.padding, str):
            raise ValueError("alignment needs numeric conv padding, not padding='same'/'valid'")
        return
    raise ValueError(
        "alignment of a parameter needs an nn.Linear or a groups=1 nn.Conv1d/2d, "
        f"got {type(module).__name__}"
    )


def _rows(module: nn.Module, u: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Input patches and output gradients as (S, in) and (S, out), S = samples × positions."""
    _check_supported(module)
    if isinstance(module, nn.Linear):
        return u.reshape(-1, u.shape[-1]), delta.reshape(-1, delta.shape[-1])
    two_d = isinstance(module, nn.Conv2d)
    u4 = u if two_d else u.unsqueeze(2)  # (N, C, L) -> (N, C, 1, L)
    d4 = delta if two_d else delta.unsqueeze(2)
    # A Conv1d is a Conv2d over a height of 1: kernel, stride and dilation 1 and no padding
    # along that height.
    k, s, p, d = (
        (a if two_d else (one, a[0]))
        for a, one in ((module.kernel_size, 1), (module.stride, 1), (module.padding, 0),
                       (module.dilation, 1))
    )
    cols = F.unfold(u4, k, dilation=d, padding=p, stride=s)  # (N, C·kh·kw, P)
    rows_u = cols.transpose(1, 2).reshape(-1, cols.shape[1])  # (N·P, C·kh·kw)
    rows_d = d4.flatten(2).transpose(1, 2).reshape(-1, d4.shape[1])  # (N·P, out)
    return rows_u, rows_d


def _param_alignment(
    module: nn.Module, which: str, u: torch.Tensor, delta: torch.Tensor
) -> dict[str, torch.Tensor]:
    cols, d = (t.double() for t in _rows(module, u, delta))  # (S, in), (S, out)
    if which == "bias":
        summed, absolute = d.sum(0), d.abs().sum(0)  # (out,)
    else:
        summed = d.T @ cols  # (out, in): the ordinary weight gradient
        absolute = d.abs().T @ cols.abs()  # Σ_s |δ_s ⊗ u_s|, since |δu| = |δ||u|
    a = _ratio(summed.abs(), absolute).flatten()
    return {
        "aggregate": summed.abs().sum() / absolute.sum(),
        "mean": a.nanmean(),
        "median": a.nanmedian(),
    }


def _resolve_param(
    model: nn.Module, param: str | int, inputs: torch.Tensor, bn_mode: str
) -> tuple[str, nn.Module, str]:
    [(_, pname)], _ = _passes.layer_params(model, [param], inputs, bn_mode)
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
        model: any ``nn.Module`` whose output is (N, C) logits (a ``torch.compile``'d one
            is measured through its original module, with a warning).
        loss_fn: ``loss_fn(model(inputs), targets)`` is the loss.
        batch: ``(inputs, targets)``.
        param: a conv/linear ``weight``/``bias`` by parameter name, module name (its
            weight) or norm-site index (the feeding layer's weight, found from a traced
            forward pass for models that do not declare it); ``None`` for the logits only.
        bn_mode: ``"train"`` or ``"eval"``.

    Returns:
        ``{"dlogits": (N, C) array, "logit_alignment": (C,) array, "mode_class": int,
        "mode_fraction": the fraction of the batch predicted as the most common class,
        "positive_fraction": (C,) fraction of samples with δ_{b,c} > 0}``, and when
        ``param`` is given ``"param": name`` and ``"param_alignment": {"aggregate":
        Σ_j|Σ_s g_sj| / Σ_j Σ_s|g_sj|, "mean", "median" of A_j}``.

    Raises:
        ValueError: for a grouped/depthwise conv, a layer that is not conv/linear, that
            does not run or runs twice in the forward pass.

    Cost:
        1 forward+backward, plus two matrix products the size of ``param``'s gradient
        (plus 1 forward to trace an int site of a model that does not declare its sites).
    """
    model = _passes.unwrap(model)
    x, y = _passes.unpack_batch(batch)
    target = None if param is None else _resolve_param(model, param, x, bn_mode)
    if target is not None:
        _check_supported(target[1])
    seen: dict[str, torch.Tensor] = {}
    with _state.no_trace(model) as replay, _state.bn_mode(model, bn_mode):
        handle = target[1].register_forward_hook(_capture(seen)) if target else None
        try:
            replay()
            logits = model(x)  # (N, C)
        finally:
            if handle is not None:
                handle.remove()
        if target is not None and "output" not in seen:
            raise ValueError(
                f"layer {target[0]!r} was not called in the forward pass; pick a layer that runs"
            )
        wrt = [logits] + ([seen["output"]] if target else [])
        grads = torch.autograd.grad(loss_fn(logits, y), wrt)  # the one backward
    result = _logit_summary(logits.detach(), grads[0].detach())
    if target is not None:
        _, module, which = target
        result["param_alignment"] = _param_alignment(module, which, seen["input"], grads[1])
    host = _passes.to_host(result)
    if target is not None:
        host["param"] = target[0]
        host["param_alignment"] = {k: float(v) for k, v in host["param_alignment"].items()}
    host["mode_class"] = int(host["mode_class"])
    host["mode_fraction"] = float(host["mode_fraction"])
    return host


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
    # scatter_add, not bincount: bincount reads the largest label on the host to size its
    # output (a device sync), while the number of classes is known.
    counts = torch.zeros(logits.shape[1], dtype=torch.int64, device=pred.device)
    counts.scatter_add_(0, pred, torch.ones_like(pred))
    return {
        "dlogits": d,
        "logit_alignment": _ratio(d.sum(0).abs(), d.abs().sum(0)),
        "mode_class": counts.argmax(),
        "mode_fraction": counts.max().double() / len(pred),
        "positive_fraction": (d > 0).double().mean(0),
    }


class AlignmentProbe(Probe):
    """Log :func:`output_gradient_alignment` at the scheduled steps.

    Logs the arrays ``align/dlogits`` (N, C) and ``align/logit_alignment`` (C,), the
    metric ``align/mode_fraction`` and, with ``param``, ``align/param_aggregate`` and
    ``align/param_median``. Cost: 1 forward+backward (+1 forward for an int site of a model
    that does not declare its sites).

    Args:
        param: as in :func:`output_gradient_alignment`.
        schedule: a :class:`~bnlab.probes.base.Schedule`, or an int n for every n steps.
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).
    """

    name = "align"

    def __init__(
        self,
        param: str | int | None = None,
        *,
        schedule: Schedule | int = 1,
        bn_mode: str = "train",
    ) -> None:
        super().__init__(schedule, bn_mode=bn_mode)
        self.param = param

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
