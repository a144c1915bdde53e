"""Typed config overrides: --set strings and YAML files, with one-line errors."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Literal

import pytest

from bnlab.sweep import ConfigError, apply_overrides, config_to_dict, run_key


@dataclass(frozen=True)
class Model:
    width: int = 100
    act: Literal["sigmoid", "relu"] = "sigmoid"


@dataclass(frozen=True)
class Cfg:
    lr: float = 0.1
    steps: int = 1000
    norm: Literal["bn", "none"] = "bn"
    binarize: bool = False
    data: str = "mnist1d"
    lrs: tuple[float, ...] = (0.01, 0.1)
    pair: tuple[int, str] = (1, "a")
    init_std: float | None = None
    model: Model = field(default_factory=Model)


NAME = "ioffe2015.mnist"


@pytest.mark.parametrize(
    "sets,want",
    [
        (["lr=0.5"], {"lr": 0.5}),
        (["lr=1"], {"lr": 1.0}),
        (["steps=50000"], {"steps": 50000}),
        (["norm=none"], {"norm": "none"}),
        (["binarize=true"], {"binarize": True}),
        (["binarize=Off"], {"binarize": False}),
        (["data=paper=x"], {"data": "paper=x"}),
        (["lrs=0.5,1"], {"lrs": (0.5, 1.0)}),
        (["lrs=[0.5, 1]"], {"lrs": (0.5, 1.0)}),
        (["lrs="], {"lrs": ()}),
        (["pair=(2, b)"], {"pair": (2, "b")}),
        (["init_std=0.01"], {"init_std": 0.01}),
        (["init_std=none"], {"init_std": None}),
        (["model.width=64", "model.act=relu"], {"model": Model(64, "relu")}),
        (["lr=0.5", "lr=0.7"], {"lr": 0.7}),
    ],
    ids=["float", "int_as_float", "int", "literal", "bool_true", "bool_off", "str_with_eq",
         "tuple_csv", "tuple_brackets", "tuple_empty", "fixed_tuple", "optional_value",
         "optional_none", "nested", "last_wins"],
)
def test_good_set_values(sets, want):
    cfg = apply_overrides(Cfg(), sets, name=NAME)
    assert cfg == Cfg(**want)
    for key, value in want.items():
        assert type(getattr(cfg, key)) is type(value)


@pytest.mark.parametrize(
    "sets,message",
    [
        (["lrr=0.1"], "unknown key 'lrr' for ioffe2015.mnist; valid keys: lr, steps, norm, "
                      "binarize, data, lrs, pair, init_std, model.width, model.act"),
        (["lr=abc"], "bad value 'abc' for 'lr': expected float"),
        (["steps=1.5"], "bad value '1.5' for 'steps': expected int"),
        (["norm=bnn"], "bad value 'bnn' for 'norm': expected one of bn, none"),
        (["binarize=maybe"], "bad value 'maybe' for 'binarize': expected bool"),
        (["lrs=0.1,x"], "bad value '0.1,x' for 'lrs': expected a list of (float)"),
        (["pair=1,2,3"], "bad value '1,2,3' for 'pair': expected (int, str) (2 items)"),
        (["init_std=big"], "bad value 'big' for 'init_std': expected float or none"),
        (["model.widht=3"], "unknown key 'model.widht' for ioffe2015.mnist; valid keys:"),
        (["model=3"], "'model' is a group of settings; set one of: model.width, model.act"),
        (["lr.x=3"], "unknown key 'lr.x'"),
        (["lr"], "bad --set 'lr': expected key=value"),
    ],
    ids=["unknown_key", "bad_float", "bad_int", "bad_choice", "bad_bool", "bad_tuple_item",
         "tuple_length", "bad_optional", "unknown_nested", "group", "dotted_leaf", "no_equals"],
)
def test_bad_set_values_are_one_line_errors(sets, message):
    with pytest.raises(ConfigError) as err:
        apply_overrides(Cfg(), sets, name=NAME)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert isinstance(err.value, ValueError)


def test_yaml_file_with_nested_block_then_set_wins(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1\nnorm: none\nlrs: [0.5, 1.0]\nmodel:\n  width: 7\n"
                    "init_std: null\nbinarize: true\n")
    cfg = apply_overrides(Cfg(), ["lr=0.25", "model.act=relu"], path, name=NAME)
    assert cfg == Cfg(lr=0.25, norm="none", lrs=(0.5, 1.0), binarize=True,
                      model=Model(width=7, act="relu"))


@pytest.mark.parametrize(
    "text,message",
    [
        ("lrr: 1\n", "unknown key 'lrr' for ioffe2015.mnist"),
        ("lr: fast\n", "bad value 'fast' for 'lr': expected float"),
        ("steps: 1.5\n", "bad value 1.5 for 'steps': expected int"),
        ("binarize: 1\n", "bad value 1 for 'binarize': expected bool"),
        ("norm: batch\n", "bad value 'batch' for 'norm': expected one of bn, none"),
        ("model:\n  depth: 3\n", "unknown key 'model.depth'"),
        ("- lr\n", "must hold a mapping"),
        ("lr: [1,\n", "cannot parse config file"),
    ],
    ids=["unknown_key", "bad_float", "float_for_int", "int_for_bool", "bad_choice",
         "unknown_nested", "not_a_mapping", "syntax"],
)
def test_bad_yaml(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as err:
        apply_overrides(Cfg(), yaml_path=path, name=NAME)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        apply_overrides(Cfg(), yaml_path=tmp_path / "nope.yaml")


def test_overrides_return_a_new_frozen_config():
    base = Cfg()
    new = apply_overrides(base, ["lr=0.5"])
    assert base.lr == 0.1 and new.lr == 0.5
    with pytest.raises(FrozenInstanceError):
        new.lr = 1.0  # type: ignore[misc]
    with pytest.raises(ConfigError, match="for Cfg;"):  # default name: the class name
        apply_overrides(base, ["nope=1"])


def test_config_to_dict_is_json_ready_and_keys_follow_values():
    d = config_to_dict(apply_overrides(Cfg(), ["model.width=8"]))
    assert d["model"] == {"width": 8, "act": "sigmoid"} and d["lrs"] == [0.01, 0.1]
    assert json.loads(json.dumps(d)) == d
    assert run_key(d) == run_key(config_to_dict(Cfg(model=Model(width=8))))
    assert run_key(d) != run_key(config_to_dict(Cfg()))
    with pytest.raises(TypeError):
        config_to_dict({"lr": 0.1})


def test_long_values_are_cut_in_messages():
    with pytest.raises(ConfigError) as err:
        apply_overrides(Cfg(), ["lr=" + "9" * 10_000 + "x"], name=NAME)
    assert len(str(err.value)) < 300
