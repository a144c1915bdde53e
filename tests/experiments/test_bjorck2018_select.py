"""``bnlab reproduce bjorck2018`` selects the paper's six recipes; a typo is one line."""

from __future__ import annotations

from bnlab.cli import main
from bnlab.experiments import select_recipes

SIX = ["bjorck2018.depth", "bjorck2018.divergence", "bjorck2018.gradients", "bjorck2018.lr",
       "bjorck2018.noise_scale", "bjorck2018.rmt"]


def test_the_paper_prefix_selects_all_six_recipes():
    assert select_recipes(["bjorck2018"]) == SIX
    assert select_recipes(["bjorck2018.rmt", "Bjorck2018"])[0] == "bjorck2018.rmt"


def test_cli_reports_a_misspelt_prefix_in_one_line(tmp_path, capsys):
    code = main(["reproduce", "bjork2018", "--scale", "smoke", "--out", str(tmp_path),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "unknown recipe 'bjork2018'" in err
    assert "bjorck2018" in err  # the message lists the valid prefixes
