"""Shared plumbing of the measurement functions: layer lookup, losses and gradients.

Every pass goes through :func:`torch.func.functional_call` with an explicit parameter
dictionary, so a measurement evaluates the model at any point ``w`` without writing into
the parameters, and takes gradients with :func:`torch.autograd.grad`, so ``.grad`` is never
touched. The callers wrap everything in ``no_trace``, which restores the buffers that
train-mode BN updates.
"""

from __future__ import annotations

import copy
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from bnlab.layers.sites import NormSite, norm_sites, resolve_module, strip_compiled_prefix
from bnlab.probes._state import user_stacklevel
from bnlab.probes._trace import Trace, trace_forward

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Params = dict[str, torch.Tensor]


def unpack_batch(batch: Sequence[torch.Tensor]) -> Batch:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError("batch must be a pair (inputs, targets), as the training loop passes it")
    return batch[0], batch[1]


def unwrap(model: nn.Module, *, quiet: bool = False) -> nn.Module:
    """The module to measure: a ``torch.compile``'d model's original module, else ``model``.

    Hooks and ``functional_call`` on a compiled wrapper either miss the compiled code or
    recompile it; the original module (``_orig_mod``) shares the parameters and buffers
    and runs eagerly, which is what a measurement needs. Says so with a warning unless
    ``quiet``.
    """
    # A compiled model exists only once dynamo is imported; importing it here would cost
    # seconds for everyone else.
    frames = sys.modules.get("torch._dynamo.eval_frame")
    if frames is None or not isinstance(model, frames.OptimizedModule):
        return model
    orig = model._orig_mod
    if quiet:
        return unwrap(orig, quiet=True)
    warnings.warn(
        "bnlab.probes: measuring the original module of a torch.compile'd model "
        "(model._orig_mod, eagerly); its names work with or without the '_orig_mod.' prefix",
        UserWarning,
        stacklevel=user_stacklevel(),
    )
    return unwrap(orig)


def trainable(model: nn.Module) -> Params:
    """The parameters that training updates (``requires_grad``), by qualified name."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("the model has no parameter with requires_grad=True; nothing to measure")
    return params


def loss_at(model: nn.Module, loss_fn: LossFn, batch: Batch, params: Mapping) -> torch.Tensor:
    """``loss_fn(model(x; params), y)``; parameters missing from ``params`` are the model's."""
    x, y = batch
    return loss_fn(functional_call(model, dict(params), (x,)), y)


def grads_at(
    model: nn.Module, loss_fn: LossFn, batch: Batch, params: Mapping, wrt: Sequence[str],
    *, unused: str = "zero",
) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
    """Loss and its gradient w.r.t. the ``wrt`` entries, at ``params``: one forward+backward.

    A parameter the loss does not reach (its layer never ran) gets zeros with
    ``unused="zero"`` and ``None`` with ``unused="none"``.
    """
    point = {n: (t.detach().requires_grad_(True) if n in wrt else t) for n, t in params.items()}
    loss = loss_at(model, loss_fn, batch, point)
    grads = torch.autograd.grad(loss, [point[n] for n in wrt], allow_unused=True)
    zero = unused == "zero"
    return loss.detach(), {
        n: torch.zeros_like(point[n]) if g is None and zero else g
        for n, g in zip(wrt, grads, strict=True)
    }


def require_gradients(
    grads: Mapping[str, torch.Tensor | None], targets: Sequence[tuple[str, str]]
) -> None:
    """Raise for a measured parameter that got no gradient (its layer never ran).

    Without this a layer registered but never called reads as a zero gradient (norm 0,
    kurtosis NaN), which looks like a measurement.
    """
    for key, pname in targets:
        if grads.get(pname) is None:
            raise ValueError(
                f"layer {key!r} ({pname}) gets no gradient: it did not take part in the "
                "forward pass (registered but never called?); pick a layer that runs"
            )


def flat_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """‖concat(tensors)‖₂ in float64 (sums of many squares lose bits in float32)."""
    return torch.sqrt(sum(t.double().pow(2).sum() for t in tensors))


def device_tensor(
    values: Sequence[float], dtype: torch.dtype, device: torch.device | str
) -> torch.Tensor:
    """A small tensor of Python numbers on ``device``, copied without a host sync.

    A blocking copy to an accelerator first waits for everything queued on its stream
    (the training step's backward, when a probe runs); from pageable memory a
    ``non_blocking`` copy is staged at once and does not wait.
    """
    host = torch.tensor(list(values), dtype=dtype)
    return host if torch.device(device).type == "cpu" else host.to(device, non_blocking=True)


def to_host(tree: Any) -> Any:
    """Move every tensor in a nested dict/list/tuple to numpy, one copy per dtype and device.

    Measurements keep their numbers on the device until they return (a ``float()`` or
    ``.item()`` per number waits for the device each time); this is the one transfer.
    0-dim tensors come back as 0-dim arrays.
    """
    leaves: list[torch.Tensor] = []

    def collect(node: Any) -> None:
        if isinstance(node, torch.Tensor):
            leaves.append(node.detach())
        elif isinstance(node, dict):
            for v in node.values():
                collect(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                collect(v)

    collect(tree)
    host = _move_grouped(leaves)
    it = iter(host)

    def rebuild(node: Any) -> Any:
        if isinstance(node, torch.Tensor):
            return next(it)
        if isinstance(node, dict):
            return {k: rebuild(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(rebuild(v) for v in node)
        return node

    return rebuild(tree)


def _move_grouped(leaves: list[torch.Tensor]) -> list[np.ndarray]:
    """Per (device, dtype) group: one flat concatenation, one device-to-host copy, split."""
    out: list[np.ndarray | None] = [None] * len(leaves)
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, t in enumerate(leaves):
        if t.device.type == "cpu":
            out[i] = t.resolve_conj().numpy()
        else:
            groups.setdefault((t.device, t.dtype), []).append(i)
    for idx in groups.values():
        for i, array in zip(idx, _one_copy([leaves[i] for i in idx]), strict=True):
            out[i] = array
    return out  # type: ignore[return-value]


def _one_copy(tensors: list[torch.Tensor]) -> list[np.ndarray]:
    """Tensors of one dtype and device as numpy arrays, through one flat host copy."""
    flat = torch.cat([t.reshape(-1) for t in tensors]).cpu().numpy()
    offsets = np.cumsum([0] + [t.numel() for t in tensors])
    return [flat[offsets[j]:offsets[j + 1]].reshape(tuple(t.shape)) for j, t in enumerate(tensors)]


def warn_skipped(what: str, skipped: Mapping[str, str], total: int) -> None:
    """One warning naming the sites a default site list left out, and why."""
    if skipped:
        detail = "; ".join(f"{k}: {why}" for k, why in skipped.items())
        warnings.warn(
            f"{what} skipped {len(skipped)} of {total} norm sites (see result['skipped']): "
            f"{detail}",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def module_name(model: nn.Module, module: nn.Module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise ValueError("the module is not part of the model")


def _declares_sites(model: nn.Module) -> bool:
    return getattr(model, "norm_site_names", None) is not None


def layer_params(
    model: nn.Module,
    items: Sequence[str | int],
    inputs: torch.Tensor,
    bn_mode: str,
    *,
    with_order: bool = False,
) -> tuple[list[tuple[str, str]], list[str] | None]:
    """Resolve layers to ``(key, parameter name)`` of the weights whose gradients are measured.

    ``int``: the 1-based norm site; the weight is that of the conv/linear layer feeding the
    norm (Santurkar Def. 2.1 measures "the gradient w.r.t. layer i's parameters"). bnlab
    models declare it; for any other model it is found from one traced forward pass (see
    :mod:`bnlab.probes._trace`), and a site without a single feeding layer (after a
    residual sum or a concatenation) is an error that asks for a name.
    ``str``: a parameter name from ``named_parameters()``, or a module name (its ``weight``).

    With ``with_order`` it also returns the parameter names in depth order for "layers
    1..i−1": the order in which their modules first ran in the traced pass (parameters of
    modules that never ran last), or ``None`` for bnlab models (registration order).

    Cost: 1 forward pass (no backward) when an ``int`` site of a model without declared
    sites is asked for, or with ``with_order`` on such a model; none otherwise.

    Raises:
        ValueError: naming what is missing or ambiguous.
    """
    traced = not _declares_sites(model) and (with_order or any(isinstance(i, int) for i in items))
    trace = None
    if traced:
        norms = [s.norm for s in norm_sites(model)]
        trace = trace_forward(model, inputs, norms, bn_mode)
    targets = [_layer_param(model, item, trace) for item in items]
    order = None
    if with_order and trace is not None:
        order = _call_order(model, trace)
    return targets, order


def _layer_param(model: nn.Module, item: str | int, trace: Trace | None) -> tuple[str, str]:
    named = dict(model.named_parameters())
    if isinstance(item, str) and strip_compiled_prefix(item, named) in named:
        return item, strip_compiled_prefix(item, named)
    key, module = resolve_module(model, item)
    if isinstance(item, int):
        module = _feeding_layer(model, norm_sites(model)[item - 1], trace)
    name = module_name(model, module)
    pname = f"{name}.weight" if name else "weight"
    if not isinstance(getattr(module, "weight", None), nn.Parameter) or pname not in named:
        raise ValueError(
            f"layer {item!r} ({name or 'the model'}) has no 'weight' parameter; name a "
            "conv/linear module, a parameter from named_parameters(), or a norm-site index"
        )
    return key, pname


def _feeding_layer(model: nn.Module, site: NormSite, trace: Trace | None) -> nn.Module:
    where = f"norm site {site.index} ({site.name})"
    if trace is None:  # declared by the model
        if site.layer is None:
            raise ValueError(f"{where} has no feeding conv/linear layer")
        return site.layer
    feeder = trace.feeders.get(id(site.norm))
    if feeder is None:
        raise ValueError(f"{where} was not called in the forward pass; pick a site that runs")
    if feeder.layer is None:
        hint = ""
        if feeder.last_layer is not None:
            hint = f", e.g. {module_name(model, feeder.last_layer)!r} (the last one run before it)"
        raise ValueError(
            f"{where} has no single feeding layer: {feeder.problem}; name the layer to "
            f"measure instead{hint}"
        )
    return feeder.layer


def _call_order(model: nn.Module, trace: Trace) -> list[str]:
    """Parameter names by the first call of their module; modules that never ran last."""
    owner = {id(p): n for n, p in model.named_parameters()}
    order = [owner[id(p)] for m in trace.call_order for p in m.parameters(recurse=False)
             if id(p) in owner]
    order = list(dict.fromkeys(order))
    return order + [n for n in owner.values() if n not in order]


def params_before(
    model: nn.Module, pname: str, order: Sequence[str] | None = None
) -> list[str]:
    """Names of the parameters registered before the layer owning ``pname`` ("layers 1..i−1").

    The layer's own parameters (e.g. its bias) are excluded, whatever their position.
    ``order`` (parameter names in depth order) replaces ``named_parameters()`` order.

    Raises:
        ValueError: if ``order`` does not contain ``pname`` or names unknown parameters.
    """
    names = list(dict(model.named_parameters()))
    if order is not None:
        unknown = [n for n in order if n not in names]
        if unknown or pname not in order:
            missing = unknown or [pname]
            raise ValueError(f"order must list parameter names including {pname!r}; bad: {missing}")
        names = list(order)
    owner = pname.rpartition(".")[0]
    own = {n for n in names if n.rpartition(".")[0] == owner}
    first = min(names.index(n) for n in own if n in names)
    return [n for n in names[:first] if n not in own]


def simulate_step(
    optimizer: torch.optim.Optimizer, grads: Mapping[int, torch.Tensor]
) -> dict[int, torch.Tensor]:
    """The parameters after one ``optimizer.step()``, computed on a copy.

    The optimizer is deep-copied with every parameter replaced by a detached clone, the
    clones get ``grads`` (keyed by ``id(original parameter)``; absent = no grad, skipped by
    the step, as in the real loop), and the copy steps. Its state (momentum buffers, Adam
    moments, step counts) is a copy, so the real optimizer is untouched. Works for any
    optimizer whose ``step()`` needs no closure.

    Returns:
        ``id(original parameter) -> value after the step``.
    """
    originals = [p for group in optimizer.param_groups for p in group["params"]]
    memo: dict[int, object] = {}
    clones: dict[int, torch.Tensor] = {}
    for p in originals:
        c = nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad)
        c.grad = grads[id(p)].detach().clone() if id(p) in grads else None
        memo[id(p)] = clones[id(p)] = c
    twin = copy.deepcopy(optimizer, memo)
    # Call the class's step: an LR scheduler rebinds ``optimizer.step`` to a wrapper that
    # would step the *original* optimizer.
    type(twin).step(twin)
    return {pid: c.detach() for pid, c in clones.items()}
