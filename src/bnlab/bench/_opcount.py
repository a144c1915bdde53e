"""Count the kernels and full-size memory passes of a callable, device-independently.

Two numbers explain most of a norm layer's time on a GPU at CIFAR sizes: the kernels
launched (each costs a few microseconds of launch and dispatch) and the full-size tensors
read or written (bandwidth). Both can be counted on any device by intercepting the ATen
ops that a forward+backward dispatches, so a CPU session can see what a GPU will pay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# ops that only create views or metadata, or allocate without touching memory
_FREE = {
    "view", "_unsafe_view", "alias", "detach", "expand", "t", "transpose", "permute",
    "select", "slice", "split", "split_with_sizes", "unsqueeze", "squeeze", "as_strided",
    "unbind", "unflatten", "empty", "empty_like", "empty_strided", "new_empty", "lift_fresh",
}  # fmt: skip


@dataclass
class OpCount:
    """Kernels launched and full-size tensors read/written by one call."""

    kernels: int = 0
    passes: int = 0


class _Counter(TorchDispatchMode):
    def __init__(self, numel: int) -> None:
        super().__init__()
        self.numel = numel
        self.count = OpCount()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.overloadpacket.__name__ not in _FREE:
            self.count.kernels += 1
            reads = [t for t in tree_flatten((args, {k: v for k, v in kwargs.items()
                                                     if k != "out"}))[0]
                     if isinstance(t, torch.Tensor) and t.numel() == self.numel]  # fmt: skip
            writes = [t for t in tree_flatten(out)[0]
                      if isinstance(t, torch.Tensor) and t.numel() == self.numel]  # fmt: skip
            self.count.passes += len(reads) + len(writes)
        return out


def count_ops(fn: Callable[[], object], full_numel: int) -> OpCount:
    """Run ``fn`` once and count its non-view ATen ops and full-size tensor passes."""
    with _Counter(full_numel) as counter:
        fn()
    return counter.count
