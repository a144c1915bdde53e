"""The papers' experiments as recipes: ``bnlab list`` shows them, ``bnlab run`` runs one.

Importing this package registers every recipe.
"""

from bnlab.experiments import ioffe2015  # noqa: F401 (registers the recipe)
from bnlab.experiments.registry import Recipe, get_recipe, list_recipes, register_recipe
from bnlab.experiments.runner import describe_recipes, parse_seeds, plan, run_recipes

__all__ = [
    "Recipe",
    "describe_recipes",
    "get_recipe",
    "list_recipes",
    "parse_seeds",
    "plan",
    "register_recipe",
    "run_recipes",
]
