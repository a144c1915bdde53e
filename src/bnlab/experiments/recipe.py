"""What a recipe is: a card, a typed config with scale presets, grid axes and ``build``.

A recipe module (STYLE.md, "Recipes") holds a frozen config whose defaults are the paper's
values, the quick and smoke presets as ``replace()`` diffs, the grid axes as data and one
``build(cfg, env)``. :class:`Recipe` ties them to the recipe's card and registers the
recipe; :meth:`Recipe.plan` turns a scale, overrides and seeds into run specs; the harness
(:mod:`bnlab.experiments.harness`) performs each run.

A grid is a mapping ``{field: values}`` whose product is run, or a sequence of such
mappings whose products are joined (for grids that are not a full product, e.g. no-BN
only at the small learning rate). ``--set lr=0.1,0.5`` replaces an axis's values in every
part that sweeps it; each value is validated against the field's type.

Example:
    >>> @dataclass(frozen=True)
    ... class Cfg(RecipeConfig):
    ...     lr: PosFloat = 0.1     # paper: 0.1 (§4)
    ...     steps: PosInt = 1_000  # paper: 1k steps
    >>> PAPER = Cfg()
    >>> PRESETS = {"paper": Preset(PAPER, {"lr": (0.1, 0.5)}),
    ...            "quick": Preset(replace(PAPER, steps=200), {"lr": (0.1, 0.5)}),
    ...            "smoke": Preset(replace(PAPER, steps=5), {"lr": (0.1,)})}
    >>> RECIPE = register_recipe(Recipe(CARD, PRESETS, build))  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from bnlab.errors import UserError
from bnlab.names import DATA, SCALES
from bnlab.recipes import Card
from bnlab.registry import Registry
from bnlab.sweep import RunSpec
from bnlab.sweep.config import (
    PosInt,
    apply_sweep_overrides,
    config_from_dict,
    config_to_dict,
    validate_config,
)

__all__ = [
    "DATA",
    "RECIPES",
    "SCALES",
    "Plan",
    "Preset",
    "Recipe",
    "RecipeConfig",
    "get_recipe",
    "list_recipes",
    "register_recipe",
]

C = TypeVar("C", bound="RecipeConfig")
Grid = Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Sequence[Any]]]


@dataclass(frozen=True)
class RecipeConfig:
    """The fields every recipe config has; recipe configs subclass it.

    Attributes:
        threads: torch intra-op threads per run. Part of the run key: CPU results depend
            on it in the last bits.
    """

    threads: PosInt = 1


@dataclass(frozen=True)
class Preset(Generic[C]):
    """The config and grid of one scale.

    Attributes:
        config: the shared config of every run of the grid.
        grid: the axes: ``{field: values}``, or a sequence of those (their products joined).
    """

    config: C
    grid: Grid = field(default_factory=dict)

    def parts(self) -> tuple[dict[str, tuple[Any, ...]], ...]:
        """The grid as a tuple of ``{field: values}`` products (one when it is a mapping)."""
        raw = [self.grid] if isinstance(self.grid, Mapping) else list(self.grid)
        return tuple({k: tuple(v) for k, v in part.items()} for part in raw)


@dataclass(frozen=True)
class Plan(Generic[C]):
    """A recipe's grid at one scale, ready to run."""

    recipe: Recipe[C]
    scale: str
    data: str
    config: C
    parts: tuple[dict[str, tuple[Any, ...]], ...]
    specs: list[RunSpec]


@dataclass(frozen=True)
class Recipe(Generic[C]):
    """One paper experiment.

    Attributes:
        card: the recipe's card (name, paper, data, stored quantities, figures).
        presets: the :class:`Preset` of each scale in :data:`SCALES`.
        build: ``build(cfg, env) -> Training | Measure`` for one run (see the harness).
        seeds: seeds run per scale when ``--seeds`` is not given.
    """

    card: Card
    presets: Mapping[str, Preset[C]]
    build: Callable[..., Any]
    seeds: Mapping[str, int] = field(
        default_factory=lambda: {"smoke": 1, "quick": 3, "paper": 3})

    def __post_init__(self) -> None:
        missing = [s for s in SCALES if s not in self.presets]
        if missing:
            raise ValueError(f"recipe {self.name!r} lacks presets for scales {missing}")
        types = {type(p.config) for p in self.presets.values()}
        if len(types) != 1 or not issubclass(types.pop(), RecipeConfig):
            raise ValueError(f"recipe {self.name!r}: every preset needs the same RecipeConfig")
        for scale, preset in self.presets.items():
            validate_config(preset.config, name=f"{self.name} ({scale})")
            for part in preset.parts():
                unknown = [k for k in part if not hasattr(preset.config, k)]
                if unknown:
                    raise ValueError(f"recipe {self.name!r}: grid axes {unknown} are not "
                                     "config fields")

    @property
    def name(self) -> str:
        """The recipe name, from its card."""
        return self.card.name

    @property
    def config_type(self) -> type[C]:
        """The recipe's config class."""
        return type(self.presets["paper"].config)

    def axes(self) -> list[str]:
        """Every field some preset sweeps over, in declaration order."""
        names: dict[str, None] = {}
        for preset in self.presets.values():
            for part in preset.parts():
                names.update(dict.fromkeys(part))
        return list(names)

    def data_label(self, data: str) -> str:
        """The ``data`` label of this recipe's runs: ``"none"`` when it needs no dataset."""
        if data not in DATA:
            raise UserError(f"unknown --data {data!r}; valid: {', '.join(DATA)}")
        return "none" if self.card.dataset is None else data

    def plan(
        self,
        scale: str = "quick",
        *,
        data: str = "mnist1d",
        seeds: Sequence[int] | None = None,
        sets: Sequence[str] = (),
        config_file: str | Path | None = None,
        execution: Mapping[str, Any] | None = None,
    ) -> Plan[C]:
        """The validated config and run specs of one scale, without running anything.

        Raises:
            UserError: an unknown scale or data source, or a bad override (ConfigError).
        """
        if scale not in SCALES:
            raise UserError(f"unknown scale {scale!r}; valid scales: {', '.join(SCALES)}")
        preset = self.presets[scale]
        parts = preset.parts()
        axes = {k: tuple(dict.fromkeys(v for p in parts for v in p.get(k, ()))) for k in
                dict.fromkeys(k for p in parts for k in p)}
        cfg, new_axes = apply_sweep_overrides(preset.config, axes, sets, config_file,
                                              name=self.name)
        cfg = validate_config(cfg, name=self.name)
        changed = {k: v for k, v in new_axes.items() if v != axes[k]}
        parts = tuple({k: changed.get(k, v) for k, v in p.items()} for p in parts)
        seeds = list(range(self.seeds[scale])) if seeds is None else list(seeds)
        specs = self._specs(cfg, parts, seeds, scale, self.data_label(data), execution or {})
        return Plan(self, scale, data, cfg, parts, specs)

    def _specs(self, cfg: C, parts: Sequence[Mapping[str, tuple]], seeds: Sequence[int],
               scale: str, data: str, execution: Mapping[str, Any]) -> list[RunSpec]:
        specs, seen = [], set()
        for part in parts:
            names = list(part)
            for values in itertools.product(*part.values()):
                run_cfg = validate_config(replace(cfg, **dict(zip(names, values, strict=True))),
                                          name=self.name)
                config = {**config_to_dict(run_cfg), "scale": scale, "data": data}
                for seed in seeds:
                    spec = RunSpec(self.name, config, seed, execution=dict(execution))
                    if spec.key not in seen:
                        seen.add(spec.key)
                        specs.append(spec)
        return specs

    def config_of(self, stored: Mapping[str, Any]) -> C:
        """The typed config of one run, rebuilt from its stored form (labels dropped)."""
        return config_from_dict(self.config_type, stored, name=self.name)

    def describe_run(self, config: Mapping[str, Any], seed: int) -> str:
        """``"norm=bn lr=0.1 seed=0"``: the run's grid values and seed, for progress bars."""
        shown = " ".join(f"{k}={config[k]}" for k in self.axes() if k in config)
        return f"{shown} seed={seed}".strip()


RECIPES: Registry[Recipe[Any]] = Registry("recipe")


def register_recipe(recipe: Recipe[C]) -> Recipe[C]:
    """Register ``recipe`` under its card's name (a duplicate is an error) and return it."""
    return RECIPES.add(recipe.name, recipe)


def get_recipe(name: str) -> Recipe[Any]:
    """The recipe ``name``; an unknown name is an error listing the valid ones."""
    return RECIPES.get(name)


def list_recipes() -> list[str]:
    """The registered recipe names, sorted."""
    return RECIPES.names()
