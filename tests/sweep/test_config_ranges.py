"""Bounds declared with Annotated types, checked on overrides, YAML, defaults and reloads."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bnlab.sweep.config import (
    ConfigError,
    NonNegInt,
    PosFloat,
    PosInt,
    Probability,
    apply_overrides,
    config_from_dict,
    validate_config,
)


@dataclass(frozen=True)
class R:
    steps: PosInt = 10
    every: NonNegInt = 0
    lr: PosFloat = 0.1
    p: Probability = 0.5
    widths: tuple[PosInt, ...] = (4, 4)


def test_values_at_the_bounds_pass():
    assert apply_overrides(R(), ["every=0", "p=1", "lr=1e-9"]) == R(every=0, p=1.0, lr=1e-9)


@pytest.mark.parametrize(("bad", "text"), [
    ("steps=0", "int >= 1"), ("every=-1", "int >= 0"), ("lr=0", "float > 0"),
    ("p=1.5", "<= 1"), ("widths=4,0", "int >= 1"), ("lr=nan", "float > 0"),
    ("lr=inf", "float > 0"),
], ids=["zero_steps", "negative_period", "zero_lr", "p_above_1", "zero_width", "nan", "inf"])
def test_out_of_range_overrides_name_the_bound(bad, text):
    with pytest.raises(ConfigError, match=text):
        apply_overrides(R(), [bad])


def test_yaml_defaults_and_reloads_are_checked(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("steps: -3\n")
    with pytest.raises(ConfigError, match="'steps'"):
        apply_overrides(R(), [], path)
    with pytest.raises(ConfigError, match="'lr'"):
        validate_config(R(lr=-1.0))
    assert config_from_dict(R, {"widths": [1, 2], "scale": "quick"}) == R(widths=(1, 2))
    with pytest.raises(ConfigError, match="'widths'"):
        config_from_dict(R, {"widths": [1, 0]})
