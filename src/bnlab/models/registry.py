"""Build models by name.

Every architecture is registered under one lower-case name with :func:`register_model`
and built with :func:`create_model`. Names are normalized (case, ``-`` vs ``_``), an
unknown name lists the valid ones, and an unknown option lists the options the model
takes, so a typo in a config is a clear error rather than a silently ignored key.

Example:
    >>> from bnlab.models import create_model
    >>> model = create_model("vgg16", norm="bn", in_shape=(3, 32, 32), num_classes=10)
    >>> len(model.norm_site_names)
    15
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from torch import nn

from bnlab.registry import Registry, normalize_name

__all__ = ["MODELS", "create_model", "list_models", "model_options", "register_model"]

#: Every model builder by name.
MODELS: Registry[Callable[..., nn.Module]] = Registry("model")

# Arguments every builder takes; the rest of its keyword-only parameters are its options.
_COMMON = ("norm", "norm_kwargs", "in_shape", "num_classes")

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[F], F]:
    """Register a model builder under ``name``.

    The builder is called as ``builder(norm=..., norm_kwargs=..., in_shape=...,
    num_classes=..., **options)`` with keyword-only arguments; its other keyword-only
    parameters (with defaults) are the model's options. The model it returns must set
    ``norm_site_names`` (see ``docs/internals.md``).

    Raises:
        ValueError: if the name is already registered or the builder lacks a common
            argument.
    """
    key = normalize_name(name)

    def decorator(builder: F) -> F:
        params = inspect.signature(builder).parameters
        missing = [p for p in _COMMON if p not in params]
        if missing:
            raise ValueError(f"builder for {key!r} must take {', '.join(missing)}")
        MODELS.add(key, builder)
        return builder

    return decorator


def list_models() -> list[str]:
    """Return the registered model names, sorted."""
    return MODELS.names()


def model_options(name: str) -> dict[str, Any]:
    """Return the options of model ``name`` with their defaults (excluding the common ones).

    Raises:
        ValueError: for an unknown name (the message lists the valid names).
    """
    builder = _lookup(name)
    params = inspect.signature(builder).parameters.values()
    return {p.name: p.default for p in params if p.name not in _COMMON}


def create_model(
    name: str,
    *,
    norm: str = "bn",
    norm_kwargs: Mapping[str, Any] | None = None,
    in_shape: Sequence[int],
    num_classes: int,
    **kwargs: Any,
) -> nn.Module:
    """Build the model registered as ``name`` with the norm registered as ``norm``.

    Args:
        name: a name from :func:`list_models` (case and ``-``/``_`` do not matter).
        norm: a name from :func:`bnlab.layers.list_norms`; placed at every norm site,
            before the nonlinearity. ``"none"`` keeps the sites as identity modules.
        norm_kwargs: keyword arguments for every norm (e.g. ``{"momentum": None}``).
        in_shape: the shape of one input without the batch dimension: ``(C, H, W)`` for
            images, ``(C, L)`` for 1-D signals, ``(D,)`` for vectors (MLP, DLN).
        num_classes: the number of outputs.
        **kwargs: the model's options (see :func:`model_options`).

    Returns:
        The model, with ``norm_site_names`` set so :func:`bnlab.layers.norm_sites`
        numbers its sites the same way for every norm.

    Raises:
        ValueError: for an unknown model name, an unknown option (the message lists the
            valid ones), or an invalid shape or option value.
    """
    builder = _lookup(name)
    options = model_options(name)
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "(none)"
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for model {normalize_name(name)!r}; "
            f"valid options: {valid}"
        )
    shape = _check_shape(in_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    return builder(
        norm=norm, norm_kwargs=dict(norm_kwargs or {}), in_shape=shape, num_classes=num_classes,
        **kwargs,
    )


def _lookup(name: str) -> Callable[..., nn.Module]:
    return MODELS.get(name)


def _check_shape(in_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(in_shape) if isinstance(in_shape, (tuple, list)) else None
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(
            f"in_shape must be a non-empty tuple of positive ints without the batch "
            f"dimension, e.g. (3, 32, 32) or (1, 40); got {in_shape!r}"
        )
    return shape
