"""Recipe cards: the name, paper, data and stored quantities of every recipe (no torch).

Both stacks import the cards: experiments write what a card declares, claims and figures
read it, tests fake it. Importing this package registers every paper's cards.

Example:
    >>> from bnlab.recipes import get_card
    >>> card = get_card("ioffe2015.mnist")
    >>> card.paper, "test_acc" in [q.name for q in card.stored]
    ('Ioffe & Szegedy 2015', True)
"""

from bnlab.recipes import inspect, ioffe2015, kohler2019, yang2019
from bnlab.recipes.card import (
    CARDS,
    COMMON,
    DIVERGED_STEP,
    TRAIN_LOSS,
    Card,
    Quantity,
    activation_quantities,
    array,
    get_card,
    list_cards,
    metric,
    register_card,
)

__all__ = [
    "CARDS",
    "COMMON",
    "DIVERGED_STEP",
    "TRAIN_LOSS",
    "Card",
    "Quantity",
    "activation_quantities",
    "array",
    "get_card",
    "inspect",
    "ioffe2015",
    "kohler2019",
    "list_cards",
    "metric",
    "register_card",
    "yang2019",
]
