"""Which layer feeds a norm, read from one traced forward pass instead of registration order.

The papers' "gradient w.r.t. layer i's weights" at norm site i means the conv/linear layer
whose output the norm receives. Registration order does not say which that is: a
pre-activation block registers its 1×1 projection shortcut after ``conv2``, and a net that
keeps its convs and norms in two ``ModuleList`` objects registers every conv before every norm.
:func:`trace_forward` runs the model once with hooks on every module and follows the tensor
the norm receives back to the module that produced it:

* the tensor is the untouched output of a conv/linear layer: that layer feeds the norm;
* it is the output of a parameter-free module with one input (ReLU, dropout, pooling):
  follow that module's input;
* anything else has no single feeding layer and is reported with the reason: a tensor
  made inside a block's ``forward`` (a residual sum, a concatenation as in DenseNet, a
  reshape), a tensor changed in place after its layer returned it (``out += shortcut``),
  the model's input, or the output of a layer without a weight.

Tensors are matched by identity and autograd version, so an in-place change is seen.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bnlab.layers.sites import is_norm_module
from bnlab.probes._state import bn_mode as _bn_mode
from bnlab.probes._state import no_trace

__all__ = ["Feeder", "Trace", "is_weighted", "trace_forward"]

Key = tuple[int, int]  # (id(tensor), tensor._version): one value of one tensor object


def is_weighted(module: nn.Module) -> bool:
    """A layer whose ``weight`` a probe can measure: conv/linear, or any non-norm with one."""
    if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
        return True
    return isinstance(module._parameters.get("weight"), nn.Parameter) and not is_norm_module(
        module
    )


@dataclass(frozen=True)
class Feeder:
    """What feeds one norm: ``layer``, or ``None`` and the ``problem`` in words.

    ``last_layer`` is the weighted layer that ran last before the norm (a hint to offer
    when there is no single feeding layer).
    """

    layer: nn.Module | None
    problem: str = ""
    last_layer: nn.Module | None = None


@dataclass
class Trace:
    """The result of :func:`trace_forward`.

    Attributes:
        feeders: ``id(norm) -> Feeder`` for every norm asked about that ran.
        call_order: the modules with parameters of their own, in the order of their first
            call (depth order as the forward pass sees it).
    """

    feeders: dict[int, Feeder] = field(default_factory=dict)
    call_order: list[nn.Module] = field(default_factory=list)


class _Recorder:
    """Forward hooks that remember who produced each tensor value of one pass."""

    def __init__(self, model: nn.Module, norms: Iterable[nn.Module]) -> None:
        self.names = {id(m): n for n, m in model.named_modules()}
        self.norms = {id(m) for m in norms}
        self.producers: dict[Key, tuple[nn.Module, list[Key]]] = {}
        self.ops: dict[Key, str] = {}  # the autograd op that made each value, if any
        self.keep: list[torch.Tensor] = []  # alive until the end, so ids stay unique
        self.stack: list[list[Key]] = []
        self.inputs_of_norm: dict[int, tuple[Key | None, nn.Module | None]] = {}
        self.order: dict[int, nn.Module] = {}
        self.last_weighted: nn.Module | None = None
        self.root_inputs: list[Key] = []

    def keys(self, values: Iterable[Any]) -> list[Key]:
        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        self.keep.extend(tensors)
        keys = [(id(t), t._version) for t in tensors]
        for key, t in zip(keys, tensors, strict=True):
            if t.grad_fn is not None:
                self.ops.setdefault(key, type(t.grad_fn).__name__)
        return keys

    def pre(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        keys = self.keys([*args, *kwargs.values()])
        self.stack.append(keys)
        if any(p is not None for p in module._parameters.values()):
            self.order.setdefault(id(module), module)
        if id(module) in self.norms and id(module) not in self.inputs_of_norm:
            first = keys[0] if args and isinstance(args[0], torch.Tensor) else None
            self.inputs_of_norm[id(module)] = (first, self.last_weighted)

    def post(self, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        del args
        inputs = self.stack.pop() if self.stack else []
        if is_weighted(module):
            self.last_weighted = module
        if not isinstance(out, torch.Tensor):
            return
        key = self.keys([out])[0]
        # The innermost module that returns a value produced it; a pass-through (Identity,
        # an empty Sequential) returns its input and produces nothing.
        if key not in self.producers and key not in inputs:
            self.producers[key] = (module, inputs)

    def feeder(self, norm: nn.Module) -> Feeder:
        key, last = self.inputs_of_norm[id(norm)]
        layer, problem = self._walk(key)
        return Feeder(layer, problem, last)

    def _walk(self, key: Key | None) -> tuple[nn.Module | None, str]:
        seen: set[Key] = set()
        while True:
            if key is None:
                return None, "it receives no tensor as its first positional argument"
            if key not in self.producers:
                if key in self.root_inputs:
                    return None, "its input is the model's input"
                return None, f"its input is {_op_words(self.ops.get(key))} outside any module"
            module, inputs = self.producers[key]
            if is_weighted(module):
                return module, ""
            if _transparent(module) and len(inputs) == 1 and key not in seen:
                seen.add(key)
                key = inputs[0]
                continue
            return None, self._describe(module, self.ops.get(key))

    def _describe(self, module: nn.Module, op: str | None) -> str:
        name = self.names.get(id(module), "?") or "the model"
        kind = type(module).__name__
        if any(True for _ in module.children()):
            return (f"its input is {_op_words(op)} in the forward of {name!r} ({kind}), "
                    "not the output of one of its layers")
        return f"its input is the output of {name!r} ({kind}), which is not a conv/linear layer"


_OPS = {
    "Add": "a sum (a residual connection)", "Sub": "a difference", "Mul": "a product",
    "Cat": "a concatenation", "Stack": "a stack", "View": "a reshape",
    "UnsafeView": "a reshape", "ReshapeAlias": "a reshape", "Permute": "a permutation",
    "Transpose": "a transpose",
}


def _op_words(op: str | None) -> str:
    """``'CatBackward0'`` -> ``'made by a concatenation'``."""
    if op is None:
        return "made by an operation"
    base = re.sub(r"Backward\d*$", "", op)
    return f"made by {_OPS.get(base, f'the operation {base}')}"


def _transparent(module: nn.Module) -> bool:
    """Parameter-free modules (ReLU, dropout, pooling, flatten) pass the feeding layer on."""
    return next(module.parameters(), None) is None


def trace_forward(
    model: nn.Module, inputs: torch.Tensor, norms: Iterable[nn.Module], bn_mode: str = "train"
) -> Trace:
    """Run one forward pass and find what feeds each of ``norms``.

    Cost: 1 forward pass, no backward. Autograd records the pass (so an ambiguous input can
    be named by the operation that made it, a sum or a concatenation) and every module
    output is kept alive until it ends: the memory of one training forward. Leaves no
    trace on the model (see :func:`bnlab.probes._state.no_trace`).

    Returns:
        A :class:`Trace`; norms that did not run have no entry in ``feeders``.
    """
    norms = list(norms)
    rec = _Recorder(model, norms)
    rec.root_inputs = rec.keys([inputs])
    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(rec.pre, with_kwargs=True))
        handles.append(module.register_forward_hook(rec.post))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the measurement itself warns about its BN mode
            with torch.enable_grad(), no_trace(model) as replay, _bn_mode(model, bn_mode):
                replay()
                model(inputs)
    finally:
        for h in handles:
            h.remove()
    trace = Trace(call_order=list(rec.order.values()))
    for norm in norms:
        if id(norm) in rec.inputs_of_norm:
            trace.feeders[id(norm)] = rec.feeder(norm)
    return trace
