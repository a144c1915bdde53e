"""Shared plumbing of the measurement functions: layer lookup, losses and gradients.

Every pass goes through :func:`torch.func.functional_call` with an explicit parameter
dictionary, so a measurement evaluates the model at any point ``w`` without writing into
the parameters, and takes gradients with :func:`torch.autograd.grad`, so ``.grad`` is never
touched. The callers wrap everything in ``no_trace``, which restores the buffers that
train-mode BN updates.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call

from bnlab.layers.sites import norm_sites, resolve_module

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Params = dict[str, torch.Tensor]


def unpack_batch(batch: Sequence[torch.Tensor]) -> Batch:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError("batch must be a pair (inputs, targets), as the training loop passes it")
    return batch[0], batch[1]


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
    model: nn.Module, loss_fn: LossFn, batch: Batch, params: Mapping, wrt: Sequence[str]
) -> tuple[torch.Tensor, Params]:
    """Loss and its gradient w.r.t. the ``wrt`` entries, at ``params``: one forward+backward."""
    point = {n: (t.detach().requires_grad_(True) if n in wrt else t) for n, t in params.items()}
    loss = loss_at(model, loss_fn, batch, point)
    grads = torch.autograd.grad(loss, [point[n] for n in wrt], allow_unused=True)
    return loss.detach(), {
        n: torch.zeros_like(point[n]) if g is None else g for n, g in zip(wrt, grads, strict=True)
    }


def flat_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """‖concat(tensors)‖₂ in float64 (sums of many squares lose bits in float32)."""
    return torch.sqrt(sum(t.double().pow(2).sum() for t in tensors))


def module_name(model: nn.Module, module: nn.Module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise ValueError("the module is not part of the model")


def layer_param(model: nn.Module, item: str | int) -> tuple[str, str]:
    """Resolve a layer to ``(key, parameter name)`` of the weight whose gradient is measured.

    ``int``: the 1-based norm site; the weight is that of the conv/linear layer feeding the
    norm (Santurkar Def. 2.1 measures "the gradient w.r.t. layer i's parameters").
    ``str``: a parameter name from ``named_parameters()``, or a module name (its ``weight``).

    Raises:
        ValueError: naming what is missing.
    """
    named = dict(model.named_parameters())
    if isinstance(item, str) and item in named:
        return item, item
    key, module = resolve_module(model, item)
    if isinstance(item, int):
        site = norm_sites(model)[item - 1]
        if site.layer is None:
            raise ValueError(f"norm site {item} ({site.name}) has no feeding conv/linear layer")
        module = site.layer
    name = module_name(model, module)
    pname = f"{name}.weight" if name else "weight"
    if not isinstance(getattr(module, "weight", None), nn.Parameter) or pname not in named:
        raise ValueError(
            f"layer {item!r} ({name or 'the model'}) has no 'weight' parameter; name a "
            "conv/linear module, a parameter from named_parameters(), or a norm-site index"
        )
    return key, pname


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
