"""Recipe cards: what a recipe is and what it stores, with no torch and no bnlab imports.

A :class:`Card` is the one place a recipe's stored names are typed. The experiment that
writes them, the claims that read them, the figures that draw them and the tests that fake
them all import the card's :class:`Quantity` objects, so a stored name can never be spelled
two ways. Cards are registered in :data:`CARDS` when their paper module is imported.

A quantity's name may hold ``{placeholders}`` (``"act/{site}/hist"``): :meth:`Quantity.key`
fills them and :meth:`Quantity.matches` recognizes the filled names. Its shape lists ints
and config-field names (``("pct_units", 3)``), resolved per run by :meth:`Quantity.shape_for`.

Example:
    >>> acc = metric("test_acc", "accuracy on the test split", when="every eval_every steps")
    >>> pct = array("act/{site}/percentiles", ("units", 3), "15/50/85th percentiles",
    ...             when="every pct_every steps", keys={"site": (3,)})
    >>> pct.key(site=3), pct.matches("act/3/percentiles"), pct.shape_for({"units": 20})
    ('act/3/percentiles', True, (20, 3))
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bnlab.registry import Registry

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
    "list_cards",
    "metric",
    "register_card",
]

Kind = Literal["metric", "array"]


@dataclass(frozen=True)
class Quantity:
    """One stored metric (a float per step) or array (a numpy array per step) of a recipe.

    Attributes:
        name: the stored name, possibly with ``{placeholders}``.
        kind: ``"metric"`` or ``"array"``.
        shape: ``()`` for a metric; for an array its dims, each an int or the name of the
            config field that sets it.
        meaning: what the value is, in one sentence (units included).
        when: the steps it is stored at, in words (``"every eval_every steps"``).
        keys: example values of each placeholder (the report and fake stores use them).
        constant: the value a metric takes in every run when it is a fixed count (e.g. the
            test-set size), for fake stores; ``None`` for a measurement.
    """

    name: str
    kind: Kind
    shape: tuple[int | str, ...]
    meaning: str
    when: str
    keys: Mapping[str, tuple[Any, ...]] = field(default_factory=dict, compare=False)
    constant: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("metric", "array"):
            raise ValueError(f"quantity kind must be 'metric' or 'array', got {self.kind!r}")
        if self.kind == "metric" and self.shape != ():
            raise ValueError(f"metric {self.name!r} must have shape (), got {self.shape}")
        missing = set(self.placeholders) - set(self.keys)
        if missing:
            raise ValueError(f"quantity {self.name!r} needs example keys for {sorted(missing)}")

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The ``{names}`` in :attr:`name`, in order."""
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.name) if f)

    def key(self, **values: Any) -> str:
        """The stored name with the placeholders filled (``key(site=3)``)."""
        if set(values) != set(self.placeholders):
            raise ValueError(f"{self.name!r} takes exactly {self.placeholders}, "
                             f"got {sorted(values)}")
        return self.name.format(**values)

    def examples(self) -> list[str]:
        """Every name made from the example :attr:`keys` (one name if none)."""
        names = [self.name]
        for ph in self.placeholders:
            names = [n.replace("{" + ph + "}", str(v)) for n in names for v in self.keys[ph]]
        return names

    def matches(self, stored: str) -> bool:
        """Whether ``stored`` is this quantity's name with the placeholders filled."""
        return re.fullmatch(self._pattern(), stored) is not None

    def _pattern(self) -> str:
        parts = []
        for literal, name, _, _ in string.Formatter().parse(self.name):
            parts.append(re.escape(literal))
            if name:
                parts.append(r"[^/]+")
        return "".join(parts)

    def shape_for(self, config: Mapping[str, Any]) -> tuple[int, ...]:
        """The concrete shape for one run's config (str dims read from it).

        Raises:
            KeyError: if a named dim is not a field of ``config``.
        """
        return tuple(self._dim(d, config) for d in self.shape)

    def _dim(self, d: int | str, config: Mapping[str, Any]) -> int:
        """An int dim, or a config field (``"bins"``, ``"bins+1"``; a sequence counts items)."""
        if not isinstance(d, str):
            return int(d)
        name, _, extra = d.partition("+")
        if name not in config:
            raise KeyError(f"{self.name!r}: shape dim {name!r} is not a config field")
        value = config[name]
        size = len(value) if isinstance(value, list | tuple) else int(value)
        return size + (int(extra) if extra else 0)


def metric(name: str, meaning: str, *, when: str, keys: Mapping[str, tuple] | None = None,
           constant: float | None = None) -> Quantity:
    """A scalar stored per step (``constant``: a fixed count, e.g. a test-set size)."""
    return Quantity(name, "metric", (), meaning, when, dict(keys or {}), constant)


def array(name: str, shape: Sequence[int | str], meaning: str, *, when: str,
          keys: Mapping[str, tuple] | None = None) -> Quantity:
    """A numpy array stored per step; ``shape`` dims are ints or config-field names."""
    return Quantity(name, "array", tuple(shape), meaning, when, dict(keys or {}))


def activation_quantities(prefix: str, *, units: int | str, levels: int | str, bins: int | str,
                          what: str, when: str, keys: Mapping[str, tuple]) -> tuple[Quantity, ...]:
    """What :class:`bnlab.probes.ActivationStatsProbe` stores under ``prefix``, per layer.

    The probe writes ``{prefix}/{layer}/{field}`` for the fields below (drifts from its
    second call on), so a card declares them with this one call.

    Args:
        prefix: the probe's ``prefix``.
        units: the number of units measured (an int or a config field).
        levels: the number of percentile levels.
        bins: the number of histogram bins.
        what: what is measured, e.g. ``"the sigmoid input of the last hidden layer"``.
        when: the steps, in words.
        keys: example values of ``{layer}``.
    """
    name = prefix + "/{layer}/"
    per_unit = f"of each measured unit of {what}"
    return (
        array(name + "mean", (units,), f"mean {per_unit}", when=when, keys=keys),
        array(name + "std", (units,), f"standard deviation {per_unit}", when=when, keys=keys),
        array(name + "percentiles", (units, levels), f"percentiles {per_unit}", when=when,
              keys=keys),
        array(name + "hist", (units, bins), f"histogram counts {per_unit}", when=when,
              keys=keys),
        array(name + "edges", (f"{bins}+1" if isinstance(bins, str) else bins + 1,),
              f"the histogram's bin edges, shared by the units of {what}", when=when,
              keys=keys),
        array(name + "mean_drift", (units,), f"|μ_t − μ_t'| since the previous call, {per_unit}",
              when=f"{when}, from the second call on", keys=keys),
        array(name + "var_drift", (units,), f"|σ²_t − σ²_t'| since the previous call, {per_unit}",
              when=f"{when}, from the second call on", keys=keys),
    )


#: Written by the training loop for every training recipe.
TRAIN_LOSS = metric("train_loss", "mean training loss over the log interval starting here",
                    when="every log_every steps")
#: Written by the sweep when a run diverges.
DIVERGED_STEP = metric("diverged_step", "the first step whose loss was non-finite or exploded",
                       when="once, for a diverged run")
#: Quantities every card has without declaring them.
COMMON: tuple[Quantity, ...] = (TRAIN_LOSS, DIVERGED_STEP)


@dataclass(frozen=True)
class Card:
    """What a recipe is, for both stacks (experiments and claims/report).

    Attributes:
        name: ``<paper><year>.<experiment>``, e.g. ``"ioffe2015.mnist"``.
        paper: short citation, ``"Ioffe & Szegedy 2015"``.
        figure: the figures or sections reproduced, ``"Fig. 1"``.
        summary: one line on what the recipe runs.
        dataset: what ``--data paper`` loads (``"mnist"``, ``"cifar10"``), or ``None`` for
            a recipe that needs no dataset (it records ``data="none"``).
        data_paper: ``--data paper`` in words, with every reduction made at quick scale.
        data_mnist1d: the MNIST-1D adaptation in words (what ``--data mnist1d`` runs).
        stored: every metric and array the recipe stores (beyond :data:`COMMON`).
        figures: the report's figures for this recipe, in display order.
        runtime: measured or expected wall time per scale, in words.
    """

    name: str
    paper: str
    figure: str
    summary: str
    dataset: str | None
    data_paper: str
    data_mnist1d: str
    stored: tuple[Quantity, ...]
    figures: tuple[str, ...] = ()
    runtime: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        names = [q.name for q in self.all_stored]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"card {self.name!r} declares {duplicates} more than once")

    @property
    def all_stored(self) -> tuple[Quantity, ...]:
        """:attr:`stored` plus the :data:`COMMON` quantities."""
        return (*self.stored, *COMMON)

    def quantity_of(self, stored_name: str) -> Quantity | None:
        """The declared quantity a stored name belongs to, or ``None``."""
        return next((q for q in self.all_stored if q.matches(stored_name)), None)


CARDS: Registry[Card] = Registry("recipe")


def register_card(card: Card) -> Card:
    """Register ``card`` under its name (a duplicate is an error) and return it."""
    return CARDS.add(card.name, card)


def get_card(name: str) -> Card:
    """The card of recipe ``name``; an unknown name lists the valid ones."""
    return CARDS.get(name)


def list_cards() -> list[Card]:
    """Every registered card, sorted by name."""
    return CARDS.values()
