"""The recipe registry: each paper experiment is a :class:`Recipe` registered by name.

A recipe turns a scale preset plus user overrides into a list of runs (one
:class:`~bnlab.sweep.RunSpec` per grid point and seed) and names the module-level
function that performs one run. The sweep executes the runs; claims and figures read what
the runs stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bnlab.sweep import RunSpec

__all__ = ["SCALES", "Recipe", "get_recipe", "list_recipes", "register_recipe"]

SCALES = ("smoke", "quick", "paper")


@dataclass(frozen=True)
class Recipe:
    """One paper experiment.

    Attributes:
        name: registry name, ``<paper>.<experiment>`` (e.g. ``ioffe2015.mnist``).
        paper: citation, e.g. ``"Ioffe & Szegedy 2015"``.
        figure: the figure(s) it reproduces.
        summary: one line for ``bnlab list``.
        presets: the typed, frozen config of each scale.
        expand: ``expand(config, seeds) -> list[RunSpec]``: the run grid.
        run: the module-level function performing one run, ``run(spec, ctx)``.
        quick_runtime: measured wall time of the whole quick-scale grid on 2 CPU cores.
        data: what ``--data paper`` uses and what the ``mnist1d`` adaptation is.
        default_seeds: seeds run when ``--seeds`` is not given, per scale.
    """

    name: str
    paper: str
    figure: str
    summary: str
    presets: dict[str, Any]
    expand: Callable[[Any, Sequence[int]], list[RunSpec]]
    run: Callable[..., Any]
    quick_runtime: str
    data: str
    default_seeds: dict[str, int] = field(
        default_factory=lambda: {"smoke": 1, "quick": 3, "paper": 3}
    )


_RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    """Add ``recipe`` to the registry (a duplicate name is an error)."""
    if recipe.name in _RECIPES:
        raise ValueError(f"recipe {recipe.name!r} is already registered")
    missing = set(SCALES) - set(recipe.presets)
    if missing:
        raise ValueError(f"recipe {recipe.name!r} lacks presets for scales {sorted(missing)}")
    _RECIPES[recipe.name] = recipe
    return recipe


def list_recipes() -> list[str]:
    """Registered recipe names, sorted."""
    return sorted(_RECIPES)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name is a ``ValueError`` listing the valid ones."""
    if name not in _RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {', '.join(list_recipes())}")
    return _RECIPES[name]
