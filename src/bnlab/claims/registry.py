"""The registries of claims and of recipe metadata.

Claims register by id (``c01`` …, PAPERS.md §8) and recipes by name (``ioffe2015.mnist``).
:class:`RecipeInfo` carries what the report shows about a recipe (paper, figure, title,
which figures to draw) so the report never imports the torch-side recipe modules. A
duplicate id or name is an error; an unknown one is an error that lists the valid ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from bnlab.claims.core import Claim

__all__ = [
    "RecipeInfo",
    "get_claim",
    "get_recipe",
    "list_claims",
    "list_recipes",
    "register_claim",
    "register_recipe",
]

_CLAIMS: dict[str, Claim] = {}
_RECIPES: dict[str, RecipeInfo] = {}


@dataclass(frozen=True)
class RecipeInfo:
    """What the report needs to know about a recipe.

    Attributes:
        name: the recipe name, as stored in the ``recipe`` column of the runs.
        paper: short citation, e.g. ``"Ioffe & Szegedy 2015"``.
        figure: the paper's figure the recipe reproduces, e.g. ``"Fig. 1"``.
        title: one line on what the recipe runs.
        figures: names of figure kinds the report draws for it (keys of
            :data:`bnlab.report.FIGURES`), in display order.
    """

    name: str
    paper: str
    figure: str
    title: str
    figures: tuple[str, ...] = ()


def register_claim(claim: Claim) -> Claim:
    """Add ``claim`` to the registry and return it.

    Raises:
        ValueError: if a claim with the same id is already registered.
    """
    if claim.id in _CLAIMS:
        raise ValueError(f"claim {claim.id!r} is already registered (ids follow PAPERS.md §8)")
    _CLAIMS[claim.id] = claim
    return claim


def get_claim(claim_id: str) -> Claim:
    """The registered claim ``claim_id``.

    Raises:
        KeyError: for an unknown id; the message lists the registered ids.
    """
    if claim_id not in _CLAIMS:
        raise KeyError(f"unknown claim {claim_id!r}; registered: {', '.join(sorted(_CLAIMS))}")
    return _CLAIMS[claim_id]


def list_claims(recipe: str | None = None) -> list[Claim]:
    """The registered claims sorted by id, optionally only those of ``recipe``."""
    return [c for _, c in sorted(_CLAIMS.items()) if recipe is None or c.recipe == recipe]


def register_recipe(info: RecipeInfo) -> RecipeInfo:
    """Add a recipe's report metadata to the registry and return it.

    Raises:
        ValueError: if a recipe with the same name is already registered.
    """
    if info.name in _RECIPES:
        raise ValueError(f"recipe {info.name!r} is already registered; pick another name")
    _RECIPES[info.name] = info
    return info


def get_recipe(name: str) -> RecipeInfo:
    """The registered recipe metadata ``name``.

    Raises:
        KeyError: for an unknown name; the message lists the registered names.
    """
    if name not in _RECIPES:
        raise KeyError(f"unknown recipe {name!r}; registered: {', '.join(sorted(_RECIPES))}")
    return _RECIPES[name]


def list_recipes() -> list[RecipeInfo]:
    """The registered recipes' metadata, sorted by name."""
    return [info for _, info in sorted(_RECIPES.items())]
