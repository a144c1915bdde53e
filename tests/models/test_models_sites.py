"""Norm sites: counts, numbering in execution order, same indices for every norm, biases."""

import pytest
import torch
from _models_helpers import BASE_NORMS, INPUTS, build, execution_trace, weighted_layers
from torch import nn

from bnlab.layers import list_norms
from bnlab.models import create_model, list_models, norm_sites

# (weighted layers, norm sites) from the papers' architectures: 6n+2 and 6n+1 for the
# CIFAR ResNets (He et al. §4.2), 13 conv + 3 FC for VGG-16, 8 + 3 for VGG-11, Ioffe's 3
# hidden + 1 read-out, Santurkar's 25 linear layers.
COUNTS = {
    "resnet20": (20, 19),
    "resnet56": (56, 55),
    "resnet110": (110, 109),
    "vgg16": (16, 15),
    "vgg11": (11, 10),
    "mlp": (4, 3),
    "dln": (25, 25),
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_weighted_layer_and_site_counts(name):
    model = build(name, "none")
    n_weighted, n_sites = COUNTS[name]
    assert len(weighted_layers(model)) == n_weighted
    assert len(norm_sites(model)) == n_sites


def test_resnet110_stage_widths_match_bjorck_layer_numbers():
    # Bjorck et al. Fig. 4: layer 8 has 16 channels, layer 44 has 32, layer 80 has 64.
    model = create_model("resnet110", norm="bn", in_shape=(3, 32, 32), num_classes=10)
    sites = norm_sites(model)
    assert len(sites) == 109
    for index, channels in ((8, 16), (44, 32), (80, 64)):
        assert sites[index - 1].layer.out_channels == channels
        assert sites[index - 1].norm.num_features == channels


def test_vgg16_site_names_follow_conv_numbers():
    sites = norm_sites(build("vgg16"))
    assert [s.name for s in sites[:13]] == [f"features.conv{k}.norm" for k in range(1, 14)]
    assert [s.name for s in sites[13:]] == ["classifier.fc1.norm", "classifier.fc2.norm"]
    assert all(isinstance(s.layer, nn.Conv2d) for s in sites[:13])
    assert all(isinstance(s.layer, nn.Linear) for s in sites[13:])


@pytest.mark.parametrize("kind", sorted(INPUTS))
@pytest.mark.parametrize("norm", BASE_NORMS)
@pytest.mark.parametrize("name", list_models())
def test_sites_run_in_index_order_each_norm_right_after_its_layer(name, norm, kind):
    model = build(name, norm, kind)
    trace = execution_trace(model, torch.rand(4, *INPUTS[kind]))
    position = {id(m): i for i, m in enumerate(trace)}
    sites = norm_sites(model)
    layer_positions = [position[id(s.layer)] for s in sites]
    assert layer_positions == sorted(layer_positions), "site k must be the k-th weighted layer"
    executed = [m for m in trace if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    assert [id(s.layer) for s in sites] == [id(m) for m in executed[: len(sites)]]
    for s in sites:
        assert trace[position[id(s.layer)] + 1] is s.norm, f"site {s.index}: norm not next"


@pytest.mark.parametrize("name", list_models())
def test_site_indices_identical_for_every_norm(name):
    def signature(norm):
        return [
            (s.index, s.name, type(s.layer).__name__, tuple(s.layer.weight.shape))
            for s in norm_sites(build(name, norm))
        ]

    reference = signature(list_norms()[0])
    assert [i for i, *_ in reference] == list(range(1, len(reference) + 1))
    for norm in list_norms()[1:]:
        assert signature(norm) == reference, norm


@pytest.mark.parametrize("name", list_models())
def test_none_sites_are_identity_modules(name):
    for s in norm_sites(build(name, "none")):
        x = torch.randn(4, s.layer.weight.shape[0], 5)  # (N, C_out of the layer, L)
        assert torch.equal(s.norm(x), x)


@pytest.mark.parametrize("norm", list_norms())
@pytest.mark.parametrize("name", sorted(set(list_models()) - {"dln"}))
def test_bias_dropped_exactly_before_bias_absorbing_norms(name, norm):
    model = build(name, norm)
    sites = norm_sites(model)
    for s in sites:
        assert (s.layer.bias is None) == s.norm.absorbs_bias, f"site {s.index}"
    site_layers = {id(s.layer) for s in sites}
    readouts = [m for m in weighted_layers(model) if id(m) not in site_layers]
    assert readouts and all(m.bias is not None for m in readouts)


def test_bias_rule_is_exercised_both_ways():
    # The parametrized test above is only meaningful if both kinds of norm exist.
    absorbs = {n: norm_sites(build("mlp", n))[0].norm.absorbs_bias for n in list_norms()}
    assert absorbs["bn"] is True and absorbs["none"] is False
    assert norm_sites(build("mlp", "bn"))[0].layer.bias is None
    assert norm_sites(build("mlp", "none"))[0].layer.bias is not None


@pytest.mark.parametrize(
    ("norm", "bias", "expect_bias"),
    [
        pytest.param("none", False, False, id="paper_dln_no_bias"),
        pytest.param("none", True, True, id="bias_requested_no_norm"),
        pytest.param("bn", True, False, id="bias_requested_but_absorbed"),
    ],
)
def test_dln_bias_option(norm, bias, expect_bias):
    model = create_model("dln", norm=norm, in_shape=(10,), num_classes=10, bias=bias)
    assert all((m.bias is not None) == expect_bias for m in weighted_layers(model))


def test_dln_norm_last_false_leaves_a_plain_readout():
    model = create_model("dln", norm="bn", in_shape=(10,), num_classes=10, norm_last=False)
    sites = norm_sites(model)
    assert len(sites) == 24 and len(weighted_layers(model)) == 25
    assert model.readout is weighted_layers(model)[-1]
