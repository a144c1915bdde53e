"""Selecting recipes by exact name or paper prefix (``bnlab reproduce ioffe2015``)."""

from __future__ import annotations

import pytest

from bnlab.experiments import list_recipes, runner, select_recipes
from bnlab.registry import UnknownNameError

FAKE = ["ioffe2015", "ioffe2015.mnist", "ioffe2015.sigmoid", "ioffe2015x.a", "yang2019.explosion"]


@pytest.fixture
def fake_registry(monkeypatch):
    monkeypatch.setattr(runner, "list_recipes", lambda: list(FAKE))


@pytest.mark.parametrize(("names", "expected"), [
    (["ioffe2015.mnist"], ["ioffe2015.mnist"]),
    (["ioffe2015"], ["ioffe2015"]),  # an exact name wins over the prefix
    (["ioffe2015x"], ["ioffe2015x.a"]),  # a prefix stops at the dot: not ioffe2015.*
    (["Yang2019"], ["yang2019.explosion"]),
    (["yang2019", "ioffe2015.sigmoid", "yang2019.explosion"],
     ["yang2019.explosion", "ioffe2015.sigmoid"]),  # each once, in order
], ids=["exact", "exact_before_prefix", "prefix_to_the_dot", "case", "dedup"])
def test_exact_name_else_prefix(fake_registry, names, expected):
    assert select_recipes(names) == expected


@pytest.mark.parametrize("name", ["ioffe", "ioffe2015.", "kohler2019"])
def test_unknown_name_lists_recipes_and_prefixes(fake_registry, name):
    with pytest.raises(UnknownNameError, match="paper prefix: ioffe2015, ioffe2015x, yang2019"):
        select_recipes([name])


def test_paper_prefix_on_the_real_registry():
    chosen = select_recipes(["ioffe2015"])
    assert chosen == [r for r in list_recipes() if r.startswith("ioffe2015.")]
    assert "ioffe2015.mnist" in chosen
