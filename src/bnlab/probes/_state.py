"""Leave no trace: snapshot and restore everything a measurement could disturb.

A probe that runs extra forward/backward passes changes, unless it is careful, the
parameters it perturbs, the BN running statistics (a train-mode forward updates them, and
``num_batches_tracked`` counts it), the ``.grad`` fields, the global RNG (dropout, noisy BN)
and the per-module noise generators. :func:`no_trace` captures all of it on entry and puts
it back bit for bit on exit, also when the measurement raises.

Within one measurement every pass must see the *same* landscape: the same dropout masks and
the same noisy-BN noise (Santurkar et al. 2018, App. A.2.2 evaluates one loss function at
several points). ``no_trace`` therefore yields ``replay()``, which rewinds the RNG and noise
states to the entry snapshot; call it before every forward.

Example:
    >>> with no_trace(model) as replay, bn_mode(model, "train"):
    ...     replay()
    ...     loss = loss_fn(model(x), y)
"""

from __future__ import annotations

import copy
import random
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from bnlab.layers.sites import is_norm_module

__all__ = ["BN_MODES", "ModelState", "bn_mode", "no_trace", "restore", "snapshot"]

BN_MODES = ("train", "eval")


@dataclass
class _TensorSlot:
    """One tensor attribute: the object that lived there and a copy of its value."""

    obj: torch.Tensor | None
    value: torch.Tensor | None


@dataclass
class ModelState:
    """Everything :func:`restore` puts back. Treat as opaque.

    Attributes:
        params: ``(module, name) -> slot`` for every registered parameter.
        grads: ``id(param) -> slot`` of each parameter's ``.grad`` (``None`` included).
        requires_grad: ``id(param) -> flag``.
        buffers: ``(module, name) -> slot`` for every registered buffer (``None`` included).
        training: ``module -> training flag`` for every module.
        rng: the torch CPU RNG state, the CUDA states (if CUDA is initialized), numpy's and
            Python's global states.
        noise: ``module -> deep copy of module.noise_state()`` for every module with one.
    """

    params: dict[tuple[nn.Module, str], _TensorSlot] = field(default_factory=dict)
    grads: dict[int, _TensorSlot] = field(default_factory=dict)
    requires_grad: dict[int, bool] = field(default_factory=dict)
    buffers: dict[tuple[nn.Module, str], _TensorSlot] = field(default_factory=dict)
    training: dict[nn.Module, bool] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    noise: dict[nn.Module, Any] = field(default_factory=dict)


def _clone(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().clone()


def _capture_rng() -> dict[str, Any]:
    rng: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def _noise_modules(model: nn.Module) -> Iterator[nn.Module]:
    for module in model.modules():
        if callable(getattr(module, "noise_state", None)):
            yield module


@torch.no_grad()
def snapshot(model: nn.Module) -> ModelState:
    """Capture parameters, buffers, grads, flags, RNG and noise states of ``model``.

    Cost: one copy of every parameter, gradient and buffer (no forward/backward pass).

    Args:
        model: any ``nn.Module``.

    Returns:
        A :class:`ModelState` for :func:`restore`.
    """
    state = ModelState()
    for module in model.modules():
        for name, p in module._parameters.items():
            state.params[(module, name)] = _TensorSlot(p, _clone(p))
            if p is not None and id(p) not in state.grads:
                state.grads[id(p)] = _TensorSlot(p.grad, _clone(p.grad))
                state.requires_grad[id(p)] = p.requires_grad
        for name, b in module._buffers.items():
            state.buffers[(module, name)] = _TensorSlot(b, _clone(b))
        state.training[module] = module.training
    state.rng = _capture_rng()
    state.noise = {m: copy.deepcopy(m.noise_state()) for m in _noise_modules(model)}
    return state


def _put_back(slot: _TensorSlot) -> torch.Tensor | None:
    """Return the original tensor object with its original value copied back in.

    The copy goes through ``.data``, which shares the storage but not the autograd version
    counter: a graph the user built before the measurement (forward done, backward still
    to come) saved these tensors at their current version, and ``detach().copy_()`` would
    move it and make that backward fail with "modified by an inplace operation".
    """
    if slot.obj is not None and slot.value is not None:
        slot.obj.data.copy_(slot.value)
    return slot.obj


def _restore_rng_and_noise(state: ModelState) -> None:
    torch.set_rng_state(state.rng["torch"])
    np.random.set_state(state.rng["numpy"])
    random.setstate(state.rng["python"])
    if "cuda" in state.rng:
        torch.cuda.set_rng_state_all(state.rng["cuda"])
    for module, noise in state.noise.items():
        module.set_noise_state(copy.deepcopy(noise))


@torch.no_grad()
def restore(model: nn.Module, state: ModelState) -> None:
    """Put ``model`` back exactly as :func:`snapshot` found it (bit for bit).

    The original tensor objects are reinstated and their values copied back, so references
    held elsewhere (an optimizer's parameter list, a training loop's ``.grad``) stay valid.

    Args:
        model: the model given to :func:`snapshot`.
        state: what :func:`snapshot` returned.
    """
    del model  # the state holds the modules themselves
    for (module, name), slot in state.params.items():
        module._parameters[name] = _put_back(slot)  # type: ignore[assignment]
    for (module, name), slot in state.buffers.items():
        module._buffers[name] = _put_back(slot)
    for slot in state.params.values():
        p = slot.obj
        if p is not None:
            p.grad = _put_back(state.grads[id(p)])
            p.requires_grad_(state.requires_grad[id(p)])
    for module, flag in state.training.items():
        module.training = flag
    _restore_rng_and_noise(state)


@contextmanager
def no_trace(model: nn.Module) -> Iterator[Callable[[], None]]:
    """Snapshot ``model`` on entry, restore it on exit (also on an exception).

    Inside the block the modules work on copies of their buffers and the parameters are
    expected to be read only (measurements evaluate shifted weights with
    ``torch.func.functional_call``), so an autograd graph the user built before the block
    stays usable: its saved tensors keep their version counters.

    Yields:
        ``replay()``: rewinds the RNG streams and every ``noise_state()`` to the entry
        snapshot. Call it before each forward of one measurement so every pass draws the
        same dropout masks and noisy-BN noise.
    """
    state = snapshot(model)
    try:
        _work_on_buffer_copies(state)
        yield lambda: _restore_rng_and_noise(state)
    finally:
        restore(model, state)


def _work_on_buffer_copies(state: ModelState) -> None:
    """Give every module a private copy of its buffers until :func:`restore`.

    Train-mode BN updates ``running_mean``, ``running_var`` and ``num_batches_tracked`` in
    place, and BN's backward saves the running statistics: a measurement run between the
    user's forward and backward would move their version counters and break that
    backward. On copies the originals are never written; restore reinstates them. A
    buffer registered in several modules gets one shared copy.
    """
    copies: dict[int, torch.Tensor] = {}
    for (module, name), slot in state.buffers.items():
        if slot.obj is None:
            continue
        if id(slot.obj) not in copies:
            copies[id(slot.obj)] = slot.obj.detach().clone()
        module._buffers[name] = copies[id(slot.obj)]


@contextmanager
def bn_mode(model: nn.Module, mode: str) -> Iterator[nn.Module]:
    """Put every norm module of ``model`` in ``mode`` for the duration of the block.

    ``"train"`` normalizes with batch statistics (the training objective); it updates the
    running statistics, so use it inside :func:`no_trace`, which restores them. ``"eval"``
    normalizes with the running statistics. Only norm modules (see
    :func:`bnlab.layers.is_norm_module`) are switched; dropout and every other module keep
    their own flag. All flags are restored on exit.

    A batch norm built with ``track_running_stats=False`` has no running statistics and
    normalizes with batch statistics in both modes: ``"eval"`` then silently measures the
    ``"train"`` objective, so it warns, naming those norms.

    Raises:
        ValueError: if ``mode`` is not ``"train"`` or ``"eval"``.
    """
    if mode not in BN_MODES:
        raise ValueError(f"bn_mode must be one of {BN_MODES}, got {mode!r}")
    if mode == "eval":
        _warn_without_running_stats(model)
    norms = [m for m in model.modules() if is_norm_module(m)]
    flags = [m.training for m in norms]
    try:
        for m in norms:
            m.training = mode == "train"
        yield model
    finally:
        for m, flag in zip(norms, flags, strict=True):
            m.training = flag


def _warn_without_running_stats(model: nn.Module) -> None:
    """Warn when ``"eval"`` cannot mean running statistics for some batch norms."""
    names = [
        name or type(m).__name__
        for name, m in model.named_modules()
        if is_norm_module(m)
        and getattr(m, "track_running_stats", None) is False
        # bnlab norms say whether they take batch statistics; of torch's, the BNs do
        and getattr(m, "uses_batch_stats", isinstance(m, nn.modules.batchnorm._BatchNorm))
    ]
    if names:
        shown = ", ".join(repr(n) for n in names[:4]) + (", ..." if len(names) > 4 else "")
        warnings.warn(
            f"bn_mode='eval': {len(names)} norm(s) have track_running_stats=False ({shown}) "
            "and normalize with batch statistics in eval mode too, exactly as in 'train'",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def user_stacklevel() -> int:
    """The ``stacklevel`` at which a warning issued by the caller points at user code.

    Counts the frames of ``bnlab.probes`` (and of ``contextlib``, whose context managers
    they use) between the caller and the first frame outside them, so a warning names the
    line that called the measurement however deep inside it the warning is raised.
    """
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        ("bnlab.probes", "contextlib")
    ):
        frame, level = frame.f_back, level + 1
    return level
