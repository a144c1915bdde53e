"""Packing through the harness and the command line: a recipe's smoke sweep, and the flags."""

from __future__ import annotations

import pytest
from packed_fakes import assert_same_store

from bnlab.cli import main
from bnlab.errors import UserError
from bnlab.experiments import run_recipes


def test_a_recipe_packed_stores_exactly_the_rows_of_a_serial_sweep(tmp_path):
    options = {"scale": "smoke", "data": "mnist1d", "seeds": "2", "device": "cpu",
               "progress": False}
    serial = run_recipes(["ioffe2015.mnist"], out=tmp_path / "serial", **options)
    packed = run_recipes(["ioffe2015.mnist"], out=tmp_path / "packed", executor="packed",
                         pack=3, **options)  # fmt: skip
    assert serial[0].counts["finished"] == packed[0].counts["finished"] == 4
    assert_same_store(tmp_path / "packed", tmp_path / "serial")


def test_graph_mode_without_cuda_and_a_bad_pack_are_one_line_each(tmp_path, capsys):
    base = ["run", "ioffe2015.mnist", "--scale", "smoke", "--out", str(tmp_path),
            "--device", "cpu", "--no-progress"]
    assert main([*base, "--compile", "graphs"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--compile graphs needs a CUDA device" in err
    with pytest.raises(SystemExit) as stop:  # argparse's own exit for a bad flag value
        main([*base, "--executor", "packed", "--pack", "0"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--pack" in err and "not from 1 to" in err
    with pytest.raises(UserError, match="--pack must be an int from 1 to"):
        run_recipes(["ioffe2015.mnist"], out=tmp_path, executor="packed", pack=0,
                    device="cpu")
    assert not (tmp_path / "bnlab.db").exists()  # refused before anything ran
