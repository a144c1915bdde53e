"""Recipe names on the command line: an exact name, or a paper prefix selecting a group."""

from __future__ import annotations

import pytest

from bnlab.cli import main
from bnlab.experiments import list_recipes
from bnlab.experiments.runner import resolve_recipes
from bnlab.registry import UnknownNameError


def test_a_paper_prefix_selects_every_recipe_of_that_paper_sorted():
    group = [n for n in list_recipes() if n.startswith("bjorck2018.")]
    assert len(group) == 6
    assert resolve_recipes(["bjorck2018"]) == group
    assert resolve_recipes(["BJORCK2018."]) == group  # names are normalized
    assert resolve_recipes(["ioffe2015"]) == ["ioffe2015.mnist"]


def test_exact_names_come_first_in_order_and_each_once():
    assert resolve_recipes(["ioffe2015.mnist", "bjorck2018.rmt"]) == [
        "ioffe2015.mnist", "bjorck2018.rmt"]
    both = resolve_recipes(["bjorck2018.rmt", "bjorck2018"])
    assert both[0] == "bjorck2018.rmt" and len(both) == 6 and len(set(both)) == 6


def test_nothing_selects_every_recipe():
    assert resolve_recipes(None) == resolve_recipes([]) == list_recipes()


@pytest.mark.parametrize("name", ["bjorck", "bjorck2018.lrr", "nosuchpaper", ""])
def test_an_unknown_name_or_prefix_is_the_registry_error(name):
    # "bjorck" is a prefix of names but not a paper prefix (no "bjorck."): refused too.
    with pytest.raises(UnknownNameError, match=r"valid recipes: .*bjorck2018\.depth"):
        resolve_recipes([name])


def test_cli_reports_an_unknown_prefix_in_one_line(tmp_path, capsys):
    code = main(["reproduce", "bjork2018", "--scale", "smoke", "--out", str(tmp_path),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "unknown recipe 'bjork2018'" in err
