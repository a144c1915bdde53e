"""Swap the batch norms of any model for a bnlab norm: the same network with another norm.

The usual question about a user's network, "what does BN do here?", needs the same network
without BN (or with another norm). :func:`swap_norms` replaces every ``torch.nn``
batch-norm module (``BatchNorm1d/2d/3d``, ``SyncBatchNorm``) by
``create_norm(name, num_features, eps=..., momentum=..., affine=..., track_running_stats=...)``
built with the old module's own arguments, on its device and in its dtype, in its
training mode. State the new norm shares with the old one (``weight``, ``bias``,
``running_mean``, ``running_var``, ``num_batches_tracked``, where names and shapes agree) is
copied, so swapping to ``"bn"`` computes exactly what the model computed before.

Example:
    >>> import copy
    >>> from torchvision.models import resnet18            # doctest: +SKIP
    >>> net = resnet18(num_classes=10)                      # doctest: +SKIP
    >>> plain = swap_norms(copy.deepcopy(net), "none")      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bnlab.layers.registry import create_norm

__all__ = ["BATCH_NORMS", "swap_norms"]

#: The modules :func:`swap_norms` replaces by default: torch's batch norms of every rank.
BATCH_NORMS: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm,)


def _replacement(old: nn.Module, name: str, kwargs: dict[str, Any]) -> nn.Module:
    """``create_norm(name)`` with ``old``'s signature, device, dtype, mode and shared state."""
    if isinstance(old, nn.modules.lazy.LazyModuleMixin) and old.has_uninitialized_params():
        raise ValueError(f"{type(old).__name__} is lazy and not initialized yet; run one "
                         "forward pass before swapping its norms")
    ref = next(iter(old.state_dict().values()), None)
    signature = {"eps": old.eps, "momentum": old.momentum, "affine": old.affine,
                 "track_running_stats": old.track_running_stats}
    placement = {} if ref is None else {"device": ref.device, "dtype": _float_dtype(old)}
    new = create_norm(name, int(old.num_features), **{**signature, **placement, **kwargs})
    _copy_shared_state(old, new)
    new.train(old.training)
    return new


def _float_dtype(module: nn.Module) -> torch.dtype | None:
    """The dtype of the module's floating-point state (``num_batches_tracked`` is int)."""
    for t in module.state_dict().values():
        if t.is_floating_point():
            return t.dtype
    return None


def _copy_shared_state(old: nn.Module, new: nn.Module) -> None:
    """Copy the entries of ``old.state_dict()`` that ``new`` has with the same shape."""
    target = new.state_dict()
    shared = {k: v for k, v in old.state_dict().items()
              if k in target and target[k].shape == v.shape}
    if shared:
        new.load_state_dict(shared, strict=False)


def swap_norms(
    model: nn.Module,
    norm: str,
    *,
    kinds: tuple[type[nn.Module], ...] = BATCH_NORMS,
    **kwargs: Any,
) -> nn.Module:
    """Replace every module of ``kinds`` in ``model`` by the bnlab norm ``norm``, in place.

    Each replacement is ``create_norm(norm, C, eps=, momentum=, affine=,
    track_running_stats=, device=, dtype=)`` with the replaced module's values (``kwargs``
    override them or add the norm's own options), in the replaced module's training mode;
    parameters and buffers both modules have (same name and shape) are copied. Hooks
    registered on a replaced module are not carried over. Copy the model first
    (``copy.deepcopy``) to keep the original.

    Args:
        model: any ``nn.Module`` (a ``torch.compile``'d model: pass ``model._orig_mod``).
        norm: a name from :func:`bnlab.layers.list_norms`, e.g. ``"none"`` or ``"bn"``.
        kinds: the module classes to replace; default torch's batch norms
            (``BatchNorm1d/2d/3d``, ``SyncBatchNorm``). Pass e.g. ``(bnlab.layers.BatchNorm,)``
            to swap bnlab norms instead.
        **kwargs: options of the new norm (e.g. ``num_groups`` for ``"gn"``).

    Returns:
        ``model`` with its norms replaced, or the new norm when ``model`` itself is one
        (as ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` does).

    Raises:
        bnlab.registry.UnknownNameError: for an unknown norm name (the valid ones listed).
        ValueError: for a lazy batch norm that has not run yet.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
        >>> swap_norms(net, "none")[1]
        NoNorm(8)
    """
    if isinstance(model, kinds):
        return _replacement(model, norm, kwargs)
    # ``_modules`` rather than ``named_children()``, which lists a module held twice once.
    swaps = [(parent, child_name, child)
             for parent in model.modules()
             for child_name, child in parent._modules.items()
             if isinstance(child, kinds)]
    new: dict[int, nn.Module] = {}  # a norm shared by two parents stays shared
    for parent, child_name, child in swaps:
        if id(child) not in new:
            new[id(child)] = _replacement(child, norm, kwargs)
        setattr(parent, child_name, new[id(child)])
    return model
