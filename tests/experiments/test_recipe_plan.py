"""Recipe.plan: presets, grid axes, labels and overrides, on a toy recipe."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import pytest

from bnlab.errors import UserError
from bnlab.experiments import Preset, Recipe, RecipeConfig
from bnlab.recipes import Card, metric
from bnlab.sweep import ConfigError
from bnlab.sweep.config import PosFloat, PosInt

CARD = Card("toy.plan", "Toy 2024", "Fig. 0", "a toy", "mnist", "MNIST", "MNIST-1D",
            (metric("acc", "accuracy", when="at the end"),))
NO_DATA = replace(CARD, name="toy.nodata", dataset=None)


@dataclass(frozen=True)
class Cfg(RecipeConfig):
    norm: Literal["bn", "none"] = "bn"
    lr: PosFloat = 0.1
    steps: PosInt = 100


GRID = [{"norm": ("bn",), "lr": (0.1, 0.5)}, {"norm": ("none",), "lr": (0.1,)}]
PRESETS = {"paper": Preset(Cfg(), GRID), "quick": Preset(replace(Cfg(), steps=10), GRID),
           "smoke": Preset(replace(Cfg(), steps=2), {"norm": ("bn",)})}
RECIPE = Recipe(CARD, PRESETS, build=lambda cfg, env: None)


def _points(plan):
    return sorted((s.config["norm"], s.config["lr"], s.seed) for s in plan.specs)


def test_joined_products_and_seeds():
    plan = RECIPE.plan("quick", seeds=[0, 1])
    assert _points(plan) == [("bn", 0.1, 0), ("bn", 0.1, 1), ("bn", 0.5, 0), ("bn", 0.5, 1),
                             ("none", 0.1, 0), ("none", 0.1, 1)]
    assert all(s.config["steps"] == 10 and s.config["scale"] == "quick" for s in plan.specs)
    assert len({s.key for s in plan.specs}) == len(plan.specs)


def test_axis_override_replaces_values_in_every_part_that_sweeps_it():
    plan = RECIPE.plan("quick", seeds=[0], sets=["lr=0.2,0.3"])
    assert _points(plan) == [("bn", 0.2, 0), ("bn", 0.3, 0), ("none", 0.2, 0), ("none", 0.3, 0)]


def test_axis_override_to_one_network():
    plan = RECIPE.plan("quick", seeds=[0], sets=["norm=none"])
    assert {s.config["norm"] for s in plan.specs} == {"none"}


@pytest.mark.parametrize(("sets", "message"), [
    (["norm=ln"], "one of bn, none"),
    (["lr=0"], "float > 0"),
    (["steps=0"], "int >= 1"),
    (["lr="], "at least one value"),
    (["scale=paper"], "--scale"),
    (["seed=3"], "--seeds"),
])
def test_bad_overrides_are_config_errors(sets, message):
    with pytest.raises(ConfigError, match=message):
        RECIPE.plan("quick", sets=sets)


def test_labels_and_defaults():
    plan = RECIPE.plan("smoke", data="paper")
    assert [s.seed for s in plan.specs] == [0]  # one seed at smoke by default
    assert plan.specs[0].config["data"] == "paper"
    assert "scale" not in vars(RECIPE.config_of(plan.specs[0].config))
    assert RECIPE.config_of(plan.specs[0].config) == replace(Cfg(), steps=2)


def test_recipe_without_dataset_records_data_none():
    recipe = Recipe(NO_DATA, PRESETS, build=lambda cfg, env: None)
    assert {s.config["data"] for s in recipe.plan("smoke", data="paper").specs} == {"none"}


def test_unknown_scale_and_data_are_user_errors():
    with pytest.raises(UserError, match="valid scales"):
        RECIPE.plan("huge")
    with pytest.raises(UserError, match="--data"):
        RECIPE.plan("quick", data="imagenet")


def test_execution_options_do_not_change_keys():
    a = RECIPE.plan("quick", seeds=[0], execution={"device": "cpu"})
    b = RECIPE.plan("quick", seeds=[0], execution={"device": "cuda"})
    assert [s.key for s in a.specs] == [s.key for s in b.specs]
    assert a.specs[0].execution == {"device": "cpu"}


def test_bad_recipes_fail_at_definition():
    with pytest.raises(ValueError, match="lacks presets"):
        Recipe(CARD, {"paper": PRESETS["paper"]}, build=lambda c, e: None)
    with pytest.raises(ValueError, match="not config fields"):
        Recipe(CARD, {**PRESETS, "smoke": Preset(Cfg(), {"width": (1,)})}, build=lambda c, e: 0)
    with pytest.raises(ConfigError, match="steps"):
        Recipe(CARD, {**PRESETS, "smoke": Preset(replace(Cfg(), steps=-1), {})},
               build=lambda c, e: 0)
