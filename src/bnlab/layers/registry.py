"""Build normalization layers by name.

Every norm is registered under one lower-case name with :func:`register_norm` and built
with :func:`create_norm`. Names are normalized (case, ``-`` vs ``_``) so ``"Batch-Renorm"``
finds ``batch_renorm``; an unknown name lists the valid ones.

Example:
    >>> from bnlab.layers import create_norm
    >>> norm = create_norm("bn", 64)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from bnlab.registry import Registry

__all__ = ["NORMS", "create_norm", "list_norms", "register_norm"]

#: Every norm factory by name.
NORMS: Registry[Callable[..., nn.Module]] = Registry("norm")

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_norm(name: str) -> Callable[[F], F]:
    """Register a norm class or factory under ``name``.

    The factory is called as ``factory(num_features, **kwargs)`` and must accept the full
    BatchNorm signature (``eps``, ``momentum``, ``affine``, ``track_running_stats``,
    ``device``, ``dtype``). The built module must have a boolean ``absorbs_bias``.

    Raises:
        ValueError: if the name is already registered.
    """
    def decorator(factory: F) -> F:
        NORMS.add(name, factory)
        return factory

    return decorator


def list_norms() -> list[str]:
    """Return the registered norm names, sorted."""
    return NORMS.names()


def create_norm(name: str, num_features: int, **kwargs: object) -> nn.Module:
    """Build the norm registered as ``name`` for ``num_features`` channels.

    Args:
        name: a name from :func:`list_norms` (case and ``-``/``_`` do not matter).
        num_features: the number of channels C (dim 1 of the input), at least 1.
        **kwargs: the BatchNorm signature plus the norm's own options.

    Raises:
        bnlab.registry.UnknownNameError: for an unknown name (the message lists the valid
            names).
        ValueError: for C < 1.
    """
    factory = NORMS.get(name)
    if not isinstance(num_features, int) or num_features < 1:
        raise ValueError(f"num_features must be an int >= 1, got {num_features!r}")
    return factory(num_features, **kwargs)
