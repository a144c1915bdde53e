"""Probes on architectures bnlab did not write (issue 18, items 2, 3 and 5).

The networks in ``_zoo`` carry the block shapes of public CIFAR model collections:
pre-activation residual blocks, MobileNetV2 inverted residuals (a BN feeding a conv
directly, depthwise convolutions), DenseNet concatenations, EfficientNet blocks with
squeeze-excitation and layers registered but never called, and ModuleLists that register
every conv before every norm. References are plain autograd on deep copies.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _probe_helpers import ConvNet
from _zoo import batch, make
from torch import nn

from bnlab.probes import (
    ActivationStatsProbe,
    GradientStatsProbe,
    ProbeContext,
    activation_stats,
    depth_profile,
    gradient_explosion_rate,
    gradient_stats,
    internal_covariate_shift,
    interpolated_step_stats,
    output_gradient_alignment,
)

CE = F.cross_entropy


def _update(model):
    gen = torch.Generator().manual_seed(3)
    return {n: 0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype)
            for n, p in model.named_parameters()}


def _autograd_grad(model, param_name):
    """Twin: the plain training gradient of one parameter on a deep copy."""
    twin = copy.deepcopy(model)
    x, y = batch()
    CE(twin(x), y).backward()
    return dict(twin.named_parameters())[param_name].grad


# -- item 2: default site lists work on any model -------------------------------------------


def test_depth_profile_default_skips_a_norm_feeding_a_conv_directly():
    """MobileNetV2: at stride 2 the linear bottleneck's BN output is the next conv's input."""
    model, b = make("mobilenetv2"), batch()
    with pytest.warns(UserWarning, match="skipped 1 of 12 norm sites"):
        prof = depth_profile(model, b)
    assert list(prof["skipped"]) == ["7"] and "pre_norm" in prof["skipped"]["7"]
    others = [i for i in range(1, 13) if i != 7]
    named = depth_profile(model, b, sites=others)  # the same sites, asked for by index
    assert prof["sites"] == [str(i) for i in others]
    for got, want in zip(prof["channel_std"], named["channel_std"], strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="site '7' its output feeds the next layer directly"):
        depth_profile(model, b, sites=[6, 7])  # named sites are not skipped


@pytest.mark.parametrize("where", ["block_output", "pre_norm"])
def test_depth_profile_default_skips_a_norm_never_called(where):
    model, b = make("efficientnet"), batch()
    with pytest.warns(UserWarning, match="not called"):
        prof = depth_profile(model, b, where=where)
    assert prof["skipped"] == {"2": "was not called in the forward pass"}
    assert prof["sites"] == ["1", "3", "4", "5", "6", "7"]
    assert list(prof["depth"]) == [1, 3, 4, 5, 6, 7] and np.isfinite(prof["slope"])
    with pytest.raises(ValueError, match="site '2' was not called"):
        depth_profile(model, b, where=where, sites=[2])


def test_interpolated_step_stats_default_skips_instead_of_key_error():
    model, b = make("efficientnet"), batch()
    update = _update(model)
    with pytest.warns(UserWarning, match="interpolated_step_stats skipped 1 of 7"):
        out = interpolated_step_stats(model, CE, b, update, steps=3)
    assert out["skipped"] == {"2": "was not called in the forward pass"}
    assert sorted(out["mean"]) == ["1", "3", "4", "5", "6", "7"]
    named = interpolated_step_stats(model, CE, b, update, steps=3, sites=[1, 3, 4, 5, 6, 7])
    for key in named["var"]:
        np.testing.assert_array_equal(out["var"][key], named["var"][key])
    with pytest.raises(ValueError, match="site '2' was not called"):
        interpolated_step_stats(model, CE, b, update, steps=3, sites=[2, 3])


@pytest.mark.parametrize("arch", ["efficientnet", "mobilenetv2", "preact", "densenet"])
def test_explosion_rate_default_runs_on_any_model(arch):
    model, b = make(arch), batch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a skipped site is reported in the result
        out = gradient_explosion_rate(model, CE, b)
    measured = [int(k) for k in out["layers"]]
    assert len(out["ratios"]) == len(measured) - 1 and np.isfinite(out["mean"])
    again = gradient_explosion_rate(model, CE, b, layers=measured)
    assert again["ratios"] == out["ratios"]
    if arch == "efficientnet":
        assert out["skipped"] == {"2": "was not called in the forward pass"}
        with pytest.raises(ValueError, match="layer '2' was not called"):
            gradient_explosion_rate(model, CE, b, layers=[1, 2, 3])


# -- item 3a: the feeding layer of an int site comes from the traced forward ------------------


def test_int_site_uses_the_layer_that_really_feeds_the_norm():
    """ModuleLists: every conv is registered before every norm; norms.1 is fed by convs.1."""
    model, b = make("modulelist"), batch()
    by_index = gradient_stats(model, CE, b, [2], bins=5)["2"]
    by_name = gradient_stats(model, CE, b, ["convs.1"], bins=5)["convs.1"]
    assert by_index["norm"] == by_name["norm"]
    want = _autograd_grad(model, "convs.1.weight")
    assert by_index["norm"] == pytest.approx(float(want.norm()), rel=1e-12)
    align = output_gradient_alignment(model, CE, b, param=2)
    assert align["param"] == "convs.1.weight"


def test_ics_layers_before_follow_the_forward_pass():
    """'Layers 1..i−1' of convs.2 are convs.0, norms.0, convs.1, norms.1 (call order)."""
    model, b = make("modulelist"), batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    got = internal_covariate_shift(model, CE, b, opt, [3, "convs.2"])
    assert got["3"] == got["convs.2"]
    call_order = [f"{m}.{i}.{p}" for i in range(3) for m in ("convs", "norms")
                  for p in ("weight", "bias")] + ["head.weight", "head.bias"]
    explicit = internal_covariate_shift(model, CE, b, opt, ["convs.2"], order=call_order)
    assert got["convs.2"] == explicit["convs.2"]
    registration = [n for n, _ in model.named_parameters()]
    wrong = internal_covariate_shift(model, CE, b, opt, ["convs.2"], order=registration)
    assert wrong["convs.2"]["l2"] != got["convs.2"]["l2"]  # the norms' updates do matter


@pytest.mark.parametrize(
    ("arch", "site", "hint", "why"),
    [
        ("preact", 3, "layer1.0.conv2", "sum"),  # registration order says: the shortcut
        ("preact", 5, "layer2.0.conv2", "sum"),
        ("densenet", 3, "dense.0.conv2", "concatenation"),
        ("densenet", 5, "dense.1.conv2", "concatenation"),
    ],
    ids=["preact-after-projection-block", "preact-last", "dense-after-concat", "dense-last"],
)
def test_site_without_a_single_feeding_layer_says_so(arch, site, hint, why):
    model, b = make(arch), batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = [
        lambda: gradient_stats(model, CE, b, [site]),
        lambda: internal_covariate_shift(model, CE, b, opt, [site]),
        lambda: output_gradient_alignment(model, CE, b, param=site),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="no single feeding layer") as err:
            call()
        message = str(err.value)
        assert f"made by a {why}" in message and repr(hint) in message
        assert ("concatenation" in message) == (why == "concatenation")
        assert "\n" not in message


@pytest.mark.parametrize(
    ("arch", "site", "layer"),
    [("preact", 1, "conv1"), ("preact", 2, "layer1.0.conv1"), ("preact", 4, "layer2.0.conv1"),
     ("densenet", 2, "dense.0.conv1"), ("mobilenetv2", 7, "layers.1.conv3"),
     ("mobilenetv2", 11, "layers.2.shortcut.0"), ("efficientnet", 7, "layers.1.conv3")],
)
def test_sites_fed_directly_resolve_to_their_layer(arch, site, layer):
    model, b = make(arch), batch()
    got = gradient_stats(model, CE, b, [site], bins=4)[str(site)]
    want = _autograd_grad(model, f"{layer}.weight")
    assert got["norm"] == pytest.approx(float(want.norm()), rel=1e-12)


def test_feeding_layer_is_found_through_parameter_free_modules():
    """Linear → ReLU(inplace) → Dropout → BN: the linear layer feeds the norm."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(inplace=True), nn.Dropout(0.0),
                          nn.BatchNorm1d(5), nn.Linear(5, 3), nn.BatchNorm1d(3)).double()
    x = torch.randn(8, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    got = gradient_stats(model, CE, (x, y), [1, 2], bins=4)
    for key, pname in (("1", "0.weight"), ("2", "4.weight")):
        twin = copy.deepcopy(model)
        CE(twin(x), y).backward()
        want = dict(twin.named_parameters())[pname].grad
        assert got[key]["norm"] == pytest.approx(float(want.norm()), rel=1e-12)


# -- item 3b: a layer that never runs is an error, not zeros ---------------------------------


def test_layer_never_called_is_an_error():
    model, b = make("efficientnet"), batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    never = "layers.0.conv1"  # expand_ratio 1: registered, never called
    with pytest.raises(ValueError, match="gets no gradient: it did not take part"):
        gradient_stats(model, CE, b, [never])
    with pytest.raises(ValueError, match="gets no gradient"):
        internal_covariate_shift(model, CE, b, opt, [never])
    with pytest.raises(ValueError, match="not called in the forward pass"):
        output_gradient_alignment(model, CE, b, param=never)
    with pytest.raises(ValueError, match="not called in the forward pass"):
        gradient_stats(model, CE, b, [2])  # its norm site never runs either
    probe = GradientStatsProbe([never])
    ctx = ProbeContext(model, CE, b, opt, 0.1, 0, lambda name, value: None)
    with pytest.raises(ValueError, match="gets no gradient"):
        probe.on_step(ctx)


# -- item 3c: bn_mode="eval" without running statistics warns ---------------------------------


def test_eval_mode_on_norms_without_running_stats_warns():
    torch.manual_seed(0)
    model = ConvNet().double()  # bn2 has track_running_stats=False
    x = torch.randn(4, 2, 4, 4, dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"track_running_stats=False \('bn2'\)"):
        activation_stats(model, x, ["bn2"], bn_mode="eval")
    with pytest.warns(UserWarning, match="normalize with batch statistics in eval mode"):
        gradient_stats(model, CE, (x, torch.zeros(4, dtype=torch.long)), ["conv2"],
                       bn_mode="eval")


def test_no_warning_when_eval_mode_means_running_stats():
    model = make("preact")
    model.layer1[0].bn1 = nn.LayerNorm([4, 8, 8]).double()  # no batch statistics at all
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        activation_stats(model, batch(), [1, 2], bn_mode="eval")
        activation_stats(ConvNet(), torch.randn(4, 2, 4, 4), ["bn2"], bn_mode="train")


# -- item 3d: a module returning a tuple ------------------------------------------------------


class TupleOut(nn.Module):
    """Returns (output, auxiliary) as attention or recurrent modules do."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.lin(x)
        return out, out.mean()


class WithTuple(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = TupleOut()
        self.bn = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.block(x)
        return self.head(self.bn(h))


def test_module_returning_a_tuple_is_a_clear_error():
    model, x = WithTuple(), torch.randn(6, 4)
    with pytest.raises(ValueError, match="'block' returns a tuple, not a tensor"):
        activation_stats(model, x, ["block"], where="post")
    stats = activation_stats(model, x, ["block.lin", "bn"], where="post")  # the fix it names
    assert stats["block.lin"].mean.shape == (4,)


def test_watching_a_tuple_module_does_not_break_the_training_forward():
    model, x = WithTuple(), torch.randn(6, 4)
    probe = ActivationStatsProbe(["block"], where="post")
    with probe.watch_forward(model):
        loss = CE(model(x), torch.zeros(6, dtype=torch.long))  # the training pass runs
    loss.backward()
    ctx = ProbeContext(model, CE, (x, None), None, 0.1, 0, lambda name, value: None)
    with pytest.raises(ValueError, match="returns a tuple"):
        probe.on_step(ctx)


# -- item 5: grouped convolutions -------------------------------------------------------------


def test_alignment_refuses_depthwise_convolutions_and_says_why():
    model, b = make("mobilenetv2"), batch()
    with pytest.raises(ValueError, match=r"does not support grouped or depthwise convolutions "
                                         r"\(groups=8\)") as err:
        output_gradient_alignment(model, CE, b, param="layers.0.conv2")
    assert "each output channel sees only its own group" in str(err.value)
    ok = output_gradient_alignment(model, CE, b, param="layers.0.conv3")  # groups=1 works
    assert 0 < ok["param_alignment"]["aggregate"] <= 1
