"""Recipe cards: quantities, placeholders, shapes, and the registry of cards."""

from __future__ import annotations

import pytest

from bnlab.recipes import COMMON, Card, activation_quantities, array, get_card, metric

ACT = array("act/{layer}/hist", ("units", "bins"), "histogram", when="every 10 steps",
            keys={"layer": (2, 9)})


def test_placeholders_fill_and_match():
    assert ACT.placeholders == ("layer",)
    assert ACT.key(layer=13) == "act/13/hist"
    assert ACT.matches("act/13/hist") and not ACT.matches("act/13/hist2")
    assert not ACT.matches("act/1/3/hist") and not ACT.matches("xact/1/hist")
    assert ACT.examples() == ["act/2/hist", "act/9/hist"]
    with pytest.raises(ValueError, match="takes exactly"):
        ACT.key(site=3)


def test_shapes_resolve_against_a_run_config():
    assert ACT.shape_for({"units": 20, "bins": 30}) == (20, 30)
    edges = array("e", ("bins+1",), "edges", when="x")
    assert edges.shape_for({"bins": 30}) == (31,)
    assert array("w", ("widths", 2), "w", when="x").shape_for({"widths": [5, 5, 5]}) == (3, 2)
    with pytest.raises(KeyError, match="'unit' is not a config field"):
        array("a", ("unit",), "a", when="x").shape_for({"units": 3})


def test_quantity_checks():
    with pytest.raises(ValueError, match="example keys"):
        array("a/{layer}", (3,), "a", when="x")
    with pytest.raises(ValueError, match="shape"):
        from bnlab.recipes.card import Quantity

        Quantity("m", "metric", (3,), "m", "x")


def test_card_rejects_duplicates_and_includes_common_quantities():
    m = metric("acc", "accuracy", when="end")
    with pytest.raises(ValueError, match="more than once"):
        Card("t.dup", "p", "f", "s", None, "", "", (m, m))
    card = Card("t.ok", "p", "f", "s", None, "", "", (m, ACT))
    assert card.all_stored[-len(COMMON):] == COMMON
    assert card.quantity_of("act/5/hist") is ACT and card.quantity_of("nope") is None
    assert card.quantity_of("train_loss").name == "train_loss"


def test_activation_quantities_name_what_the_probe_writes():
    qs = activation_quantities("p", units="u", levels=3, bins="b", what="w", when="t",
                               keys={"layer": (1,)})
    names = [q.key(layer=1) for q in qs]
    assert names == [f"p/1/{f}" for f in
                     ("mean", "std", "percentiles", "hist", "edges", "mean_drift", "var_drift")]
    shapes = [q.shape_for({"u": 4, "b": 7}) for q in qs]
    assert shapes == [(4,), (4,), (4, 3), (4, 7), (8,), (4,), (4,)]


def test_registered_cards_are_found_by_name():
    card = get_card("ioffe2015.mnist")
    assert card.dataset == "mnist" and "ioffe_fig1a" in card.figures
