"""The registry of recipe figures and the decorator that fills it.

A recipe figure is ``draw(store, runs) -> DrawnFigure`` over the finished runs of one run
set. It is registered with :func:`figure`, which checks at import time that the figure's
name is declared on its recipe's card, so a misspelt figure fails when bnlab is imported,
not when a report is written.

Example:
    >>> @figure(MNIST, "ioffe_fig1a")          # doctest: +SKIP
    ... def fig1a(store, runs):
    ...     ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from bnlab.recipes import Card
from bnlab.registry import Registry
from bnlab.report.style import DrawnFigure
from bnlab.results import Store

__all__ = ["FIGURES", "Draw", "RecipeFigure", "figure"]

Draw = Callable[[Store, pd.DataFrame], DrawnFigure]


@dataclass(frozen=True)
class RecipeFigure:
    """A registered figure: its name, its recipe and how to draw it."""

    name: str
    recipe: str
    draw: Draw


#: Every recipe figure by name.
FIGURES: Registry[RecipeFigure] = Registry("figure")


def figure(card: Card, name: str) -> Callable[[Draw], Draw]:
    """Register the decorated ``draw`` as figure ``name`` of ``card``'s recipe.

    Raises:
        ValueError: at import, if ``card`` does not declare ``name`` or it is taken.
    """
    if name not in card.figures:
        raise ValueError(f"figure {name!r} is not declared on card {card.name!r} "
                         f"(declared: {', '.join(card.figures) or 'none'})")

    def decorator(draw: Draw) -> Draw:
        FIGURES.add(name, RecipeFigure(name, card.name, draw))
        return draw

    return decorator
