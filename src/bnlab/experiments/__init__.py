"""The papers' experiments as recipes: ``bnlab list`` shows them, ``bnlab run`` runs one.

Importing this package registers every recipe (one module per paper). A recipe is a card
(:mod:`bnlab.recipes`), a typed config with presets and grid axes, and ``build``
(:mod:`bnlab.experiments.recipe`); :mod:`bnlab.experiments.harness` performs its runs.
"""

from bnlab.experiments import ioffe2015, kohler2019, yang2019
from bnlab.experiments.harness import DEVICES, Measure, RunEnv, Training, resolve_device, run_spec
from bnlab.experiments.recipe import (
    DATA,
    RECIPES,
    SCALES,
    Plan,
    Preset,
    Recipe,
    RecipeConfig,
    get_recipe,
    list_recipes,
    register_recipe,
)
from bnlab.experiments.runner import (
    describe_recipes,
    parse_seeds,
    plan,
    run_recipes,
    select_recipes,
)

__all__ = [
    "DATA",
    "DEVICES",
    "RECIPES",
    "SCALES",
    "Measure",
    "Plan",
    "Preset",
    "Recipe",
    "RecipeConfig",
    "RunEnv",
    "Training",
    "describe_recipes",
    "get_recipe",
    "ioffe2015",
    "kohler2019",
    "list_recipes",
    "parse_seeds",
    "plan",
    "register_recipe",
    "resolve_device",
    "run_recipes",
    "run_spec",
    "select_recipes",
    "yang2019",
]
