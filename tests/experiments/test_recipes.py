"""Every registered recipe, parametrized over the registry: a recipe gets these for free.

* its smoke grid runs through the harness, every run finishes, and what it stores is
  exactly what its card declares, with the declared shapes;
* card, recipe, claims and figures agree on names;
* its claims and figures read a fake store generated from the card without missing data.
"""

from __future__ import annotations

import pytest
import torch
from _fake_store import fake_store

from bnlab.claims import evaluate, list_claims
from bnlab.experiments import Measure, RunEnv, get_recipe, list_recipes, run_spec
from bnlab.recipes import COMMON, TRAIN_LOSS, get_card, list_cards
from bnlab.recipes.inspect import INSPECT
from bnlab.report.figures import FIGURES
from bnlab.results import Store
from bnlab.sweep import execute

RECIPES = list_recipes()


def test_every_card_has_a_recipe_and_every_recipe_a_card():
    # The inspect card describes `bnlab inspect` runs of a user's model: no recipe runs it.
    assert sorted(c.name for c in list_cards() if c is not INSPECT) == RECIPES
    assert INSPECT.name not in RECIPES


@pytest.mark.parametrize("name", RECIPES)
def test_claims_and_figures_belong_to_registered_recipes(name):
    card = get_recipe(name).card
    for fig in card.figures:
        assert FIGURES.get(fig).recipe == name
    for claim in list_claims(name):
        assert claim.recipe == name


def test_every_registered_figure_is_on_its_card():
    for name in FIGURES:
        entry = FIGURES.get(name)
        assert name in get_card(entry.recipe).figures


@pytest.fixture(scope="module")
def smoke_stores(tmp_path_factory):
    """Each recipe's smoke grid (1 seed) run through the harness into its own store."""
    stores = {}
    for name in RECIPES:
        out = tmp_path_factory.mktemp(name.replace(".", "_"))
        plan = get_recipe(name).plan("smoke", seeds=[0], execution={"device": "cpu"})
        summary = execute(plan.specs, out, run_spec, progress=False)
        stores[name] = (out, summary)
    return stores


@pytest.mark.parametrize("name", RECIPES)
def test_smoke_runs_finish(name, smoke_stores):
    _, summary = smoke_stores[name]
    assert summary.failures == []
    assert summary.counts["finished"] == summary.total > 0


@pytest.mark.parametrize("name", RECIPES)
def test_smoke_runs_store_exactly_what_the_card_declares(name, smoke_stores):
    out, _ = smoke_stores[name]
    card = get_recipe(name).card
    seen = set()
    with Store(out) as store:
        runs = store.runs()
        stored = store.metrics()
        for metric in stored["name"].unique():
            assert card.quantity_of(metric) is not None, f"{metric!r} is not on the card"
            seen.add(card.quantity_of(metric).name)
        for row in runs.itertuples():
            for array_name in store.array_names(row.id):
                q = card.quantity_of(array_name)
                assert q is not None and q.kind == "array", f"{array_name!r} is not on the card"
                seen.add(q.name)
                shapes = {a.shape for _, a in store.arrays(row.id, array_name)}
                assert shapes == {q.shape_for(row.config)}, array_name
    declared = {q.name for q in card.stored if q not in COMMON}
    assert declared <= seen, f"declared but never stored: {sorted(declared - seen)}"


@pytest.mark.parametrize("name", RECIPES)
def test_training_recipes_log_the_loop_loss(name, smoke_stores):
    recipe = get_recipe(name)
    out, _ = smoke_stores[name]
    with Store(out) as store:
        names = set(store.metrics()["name"])
    plan = recipe.plan("smoke", seeds=[0])
    cfg = recipe.config_of(plan.specs[0].config)
    env = RunEnv(0, "smoke", plan.specs[0].config["data"], recipe.card.dataset,
                 torch.device("cpu"))
    is_measure = isinstance(recipe.build(cfg, env), Measure)
    assert (TRAIN_LOSS.name in names) != is_measure


@pytest.mark.parametrize("name", RECIPES)
def test_claims_and_figures_read_a_fake_store(name, tmp_path):
    store = fake_store(tmp_path, name)
    try:
        for claim in list_claims(name):
            verdict = evaluate(claim, store)
            assert not verdict.reason.startswith("missing data"), (claim.id, verdict.reason)
            assert verdict.measurement is not None, (claim.id, verdict.reason)
            assert len(verdict.measurement.per_seed) == 3
        runs = store.runs(recipe=name)
        for fig in get_recipe(name).card.figures:
            drawn = FIGURES.get(fig).draw(store, runs)
            assert drawn.caption
    finally:
        store.close()
