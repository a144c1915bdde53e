"""The one registry every bnlab name goes through."""

from __future__ import annotations

import pytest

from bnlab.errors import UserError
from bnlab.registry import Registry, UnknownNameError, normalize_name


def test_names_are_normalized_and_sorted():
    reg = Registry[int]("shape")
    reg.add("Square-4", 4)
    reg.add(" circle ", 0)
    assert reg.get("SQUARE_4") == 4 and reg.get("circle") == 0
    assert reg.names() == ["circle", "square_4"] and reg.values() == [0, 4]
    assert "Square-4" in reg and "oval" not in reg and len(reg) == 2


def test_unknown_name_is_a_user_error_listing_the_valid_names():
    reg = Registry[int]("category", plural="categories")
    reg.add("a", 1)
    with pytest.raises(UnknownNameError) as err:
        reg.get("b")
    assert str(err.value) == "unknown category 'b'; valid categories: a"
    assert isinstance(err.value, UserError) and isinstance(err.value, ValueError)
    with pytest.raises(UnknownNameError, match=r"\(none registered\)"):
        Registry[int]("x").get("y")


def test_duplicates_are_programming_errors_not_user_errors():
    reg = Registry[int]("shape")
    reg.add("a-b", 1)
    with pytest.raises(ValueError, match="already registered") as err:
        reg.add("A_B", 2)
    assert not isinstance(err.value, UserError)
    assert reg.get("a_b") == 1


def test_decorator_form_returns_the_entry():
    reg = Registry[object]("fn")

    @reg.register("Double")
    def double(x):
        return 2 * x

    assert reg.get("double") is double


def test_non_string_names_are_rejected_clearly():
    with pytest.raises(UnknownNameError, match="must be a string"):
        normalize_name(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(("module", "getter", "name"), [
    ("bnlab.layers", "create_norm", "bnn"),
    ("bnlab.models", "create_model", "vgg99"),
    ("bnlab.experiments", "get_recipe", "nope.recipe"),
    ("bnlab.claims", "get_claim", "c99"),
    ("bnlab.recipes", "get_card", "nope"),
])
def test_every_registry_speaks_with_one_error(module, getter, name):
    import importlib

    fn = getattr(importlib.import_module(module), getter)
    args = {"create_norm": (name, 4)}.get(getter, (name,))
    kwargs = {"in_shape": (3, 32, 32), "num_classes": 10} if getter == "create_model" else {}
    with pytest.raises(UnknownNameError, match="valid"):
        fn(*args, **kwargs)
