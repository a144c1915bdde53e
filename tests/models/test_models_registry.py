"""create_model / list_models: names, options, errors."""

import pytest
from torch import nn

from bnlab.layers import norm_sites as layers_norm_sites
from bnlab.models import (
    create_model,
    list_models,
    model_options,
    norm_sites,
    register_model,
)

EXPECTED = {"mlp", "dln", "vgg11", "vgg16", "resnet20", "resnet56", "resnet110"}


def test_list_models_has_every_architecture():
    assert EXPECTED <= set(list_models())
    assert list_models() == sorted(list_models())


def test_norm_sites_is_reexported_from_layers():
    assert norm_sites is layers_norm_sites


@pytest.mark.parametrize("spelling", ["ResNet20", " resnet20 ", "RESNET20"])
def test_names_are_normalized(spelling):
    model = create_model(spelling, norm="none", in_shape=(1, 8), num_classes=2, width=0.25)
    assert len(model.norm_site_names) == 19


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown model 'vgg19'") as err:
        create_model("vgg19", in_shape=(3, 32, 32), num_classes=10)
    for name in EXPECTED:
        assert name in str(err.value)


def test_unknown_option_names_it_and_the_valid_ones():
    with pytest.raises(ValueError, match="widht") as err:
        create_model("vgg11", in_shape=(3, 32, 32), num_classes=10, widht=0.5)
    assert "width=1.0" in str(err.value) and "init='glorot'" in str(err.value)


def test_duplicate_registration_is_an_error_and_changes_nothing():
    before = list_models()

    def other(*, norm, norm_kwargs, in_shape, num_classes):
        return nn.Identity()

    with pytest.raises(ValueError, match="already registered"):
        register_model("MLP")(other)
    assert list_models() == before


def test_builder_without_common_arguments_is_rejected():
    def bad(*, norm, in_shape):
        return nn.Identity()

    with pytest.raises(ValueError, match="norm_kwargs, num_classes"):
        register_model("bad_builder_for_test")(bad)
    assert "bad_builder_for_test" not in list_models()


def test_model_options_lists_defaults():
    assert model_options("resnet56") == {"skip": True, "width": 1.0, "init": "kaiming"}
    assert model_options("dln")["depth"] == 25


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        pytest.param("mlp", {"in_shape": ()}, "in_shape", id="empty_shape"),
        pytest.param("mlp", {"in_shape": (0, 3)}, "in_shape", id="zero_dim"),
        pytest.param("mlp", {"in_shape": 784}, "in_shape", id="shape_not_tuple"),
        pytest.param("mlp", {"num_classes": 0}, "num_classes", id="zero_classes"),
        pytest.param("vgg16", {"in_shape": (784,)}, r"\(C, H, W\)", id="vgg_flat_input"),
        pytest.param("resnet20", {"in_shape": (1, 3, 8, 8)}, r"\(C, L\)", id="resnet_3d_input"),
        pytest.param("mlp", {"activation": "gelu"}, "sigmoid, relu, tanh, linear",
                     id="bad_activation"),
        pytest.param("mlp", {"init": "xavier"}, "normal, glorot, kaiming", id="bad_init"),
        pytest.param("vgg11", {"init": "he"}, "normal, glorot, kaiming", id="bad_vgg_init"),
        pytest.param("mlp", {"dropout": 1.0}, "dropout", id="dropout_one"),
        pytest.param("mlp", {"widths": (4,), "depth": 2}, "not both", id="widths_and_depth"),
        pytest.param("mlp", {"widths": ()}, "at least one", id="no_hidden_layer"),
        pytest.param("mlp", {"depth": 0}, "depth", id="zero_depth"),
        pytest.param("vgg11", {"width": -0.5}, "width", id="negative_width"),
        pytest.param("dln", {"depth": 0}, "depth", id="dln_zero_depth"),
        pytest.param("mlp", {"norm": "batchnorm_typo"}, "unknown norm", id="unknown_norm"),
    ],
)
def test_invalid_arguments_raise_value_error(name, kwargs, match):
    args = {"in_shape": (3, 8, 8), "num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        create_model(name, **args)


def test_norm_kwargs_reach_every_norm():
    model = create_model(
        "mlp", norm="bn", norm_kwargs={"eps": 0.25, "momentum": None},
        in_shape=(6,), num_classes=2, width=4,
    )
    sites = norm_sites(model)
    assert len(sites) == 3
    assert all(s.norm.eps == 0.25 and s.norm.momentum is None for s in sites)
