"""depth_profile and interpolated_step_stats against hand-run float64 twins."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from bnlab.models import create_model
from bnlab.probes.depth import depth_profile, interpolated_step_stats


def channel_stats(t):
    """Twin: per-channel mean and biased std by an explicit loop over channels."""
    t = t.detach().double()
    means, stds = [], []
    for c in range(t.shape[1]):
        v = t[:, c].reshape(-1)
        mu = v.sum() / v.numel()
        means.append(float(mu))
        stds.append(float(((v - mu) ** 2).sum() / v.numel()) ** 0.5)
    return np.array(means), np.array(stds)


def conv_net(bn=True):
    torch.manual_seed(0)
    norm = nn.BatchNorm2d if bn else (lambda c: nn.Identity())
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), norm(4), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), norm(6), nn.ReLU(inplace=True),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 5),
    ).double()
    model.norm_site_names = (("1", "0"), ("5", "4"))  # declared, so Identity sites count
    return model


def captured(model, x, module, kind):
    """Twin capture: the input ("in") or output ("out") of one module, by a plain hook."""
    box = {}

    def pre(m, a):
        box.setdefault("v", a[0].detach().clone())

    def post(m, a, out):
        box.setdefault("v", out.detach().clone())

    if kind == "in":
        h = module.register_forward_pre_hook(pre)
    else:
        h = module.register_forward_hook(post)
    with torch.no_grad():
        model(x)
    h.remove()
    return box["v"]


@pytest.mark.parametrize("where", ["pre_norm", "block_output"])
def test_sequential_conv_net_matches_twin(where):
    model = conv_net()
    x = torch.randn(8, 3, 8, 8, dtype=torch.float64) * 2 + 0.5
    prof = depth_profile(model, (x, None), where=where)
    assert prof["sites"] == ["1", "2"]
    if where == "pre_norm":
        refs = [captured(model, x, model[1], "in"), captured(model, x, model[5], "in")]
    else:  # after the in-place ReLU, before pooling / flattening
        refs = [captured(model, x, model[3], "in"), captured(model, x, model[7], "in")]
    for got_m, got_s, ref in zip(prof["channel_mean"], prof["channel_std"], refs, strict=True):
        want_m, want_s = channel_stats(ref)
        np.testing.assert_allclose(got_m, want_m, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_s, want_s, rtol=1e-10)


def test_never_at_a_norms_output():
    """BN output has mean 0 / std ≈ 1 per channel; what is measured must not be that."""
    model = conv_net()
    x = torch.randn(8, 3, 8, 8, dtype=torch.float64) * 3 + 2
    norm_out = [captured(model, x, model[1], "out"), captured(model, x, model[5], "out")]
    for where in ("pre_norm", "block_output"):
        prof = depth_profile(model, (x, None), where=where)
        got = zip(prof["channel_mean"], prof["channel_std"], norm_out, strict=True)
        for got_m, got_s, ref in got:
            ref_m, ref_s = channel_stats(ref)
            assert np.all(np.abs(ref_m) < 1e-8)  # the norm's output really is centred
            assert np.allclose(ref_s, 1.0, atol=1e-3)  # and scaled
            # no measured channel has those statistics
            assert np.all((np.abs(got_m) > 1e-3) | (np.abs(got_s - 1.0) > 1e-3))


def test_norm_feeding_a_layer_directly_is_refused_for_block_output():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="pre_norm"):  # named: refused
        depth_profile(model, (torch.randn(8, 3), None), sites=[1])
    with pytest.warns(UserWarning, match="skipped 1 of 1"):  # default list: skipped
        prof = depth_profile(model, (torch.randn(8, 3), None))
    assert prof["sites"] == [] and "pre_norm" in prof["skipped"]["1"]
    prof = depth_profile(model, (torch.randn(8, 3), None), where="pre_norm")
    assert len(prof["channel_std"][0]) == 4 and prof["skipped"] == {}


@pytest.mark.parametrize("norm", ["bn", "none"])
def test_resnet_block_output_is_the_block_output(norm):
    model = create_model("resnet20", norm=norm, in_shape=(3, 8, 8), num_classes=4, width=0.25)
    model.double()
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    sites = ["stage1.0.unit1.norm", "stage1.0.unit2.norm", "stage3.2.unit2.norm"]
    prof = depth_profile(model, (x, None), sites=sites)
    mods = dict(model.named_modules())
    refs = [
        captured(model, x, mods["stage1.0.unit2.layer"], "in"),  # relu(norm1(conv1 x))
        captured(model, x, mods["stage1.0"], "out"),  # relu(unit2 + shortcut)
        captured(model, x, mods["stage3.2"], "out"),  # the last block's output
    ]
    for got_s, ref in zip(prof["channel_std"], refs, strict=True):
        np.testing.assert_allclose(got_s, channel_stats(ref)[1], rtol=1e-10)
    assert list(prof["depth"]) == [2, 3, 19]


def test_slope_and_r2_of_exponential_growth():
    """Identity sites after linear maps 2·I: std doubles per site, slope = log10 2, R² = 1."""
    layers = []
    for _ in range(5):
        lin = nn.Linear(3, 3, bias=False)
        nn.init.eye_(lin.weight)
        lin.weight.data.mul_(2.0)
        layers += [lin, nn.BatchNorm1d(3, affine=False, track_running_stats=False)]
    model = nn.Sequential(*layers).double()
    # a model without BN but the same sites: replace the BNs by Identity-with-sites
    plain = nn.Sequential(*[m if isinstance(m, nn.Linear) else nn.Identity() for m in layers])
    plain.norm_site_names = tuple((str(2 * i + 1), str(2 * i)) for i in range(5))
    x = torch.randn(64, 3, dtype=torch.float64)
    x = (x - x.mean(0)) / x.std(0, unbiased=False)  # unit std, like every BN output
    prof = depth_profile(plain, (x, None), where="pre_norm")
    assert prof["slope"] == pytest.approx(np.log10(2.0), rel=1e-10)
    assert prof["r2"] == pytest.approx(1.0, abs=1e-12)
    with_bn = depth_profile(model, (x, None), where="pre_norm")
    # BN resets the scale each layer: every BN input is 2·ŷ, std 2·σ/σ̃ = 2(1 - O(ε))
    assert abs(with_bn["slope"]) < 1e-5


def test_interpolated_step_stats_matches_twin():
    model = conv_net(bn=False)
    x = torch.randn(8, 3, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 5, (8,))
    gen = torch.Generator().manual_seed(1)
    update = {n: torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5
              for n, p in model.named_parameters() if n.startswith("4.")}
    out = interpolated_step_stats(model, F.cross_entropy, (x, y), update, steps=5, sites=[2])
    assert list(out["s"]) == [0.0, 0.25, 0.5, 0.75, 1.0]
    twin = conv_net(bn=False)
    for i, s in enumerate(out["s"]):
        with torch.no_grad():
            for n, p in twin.named_parameters():
                base = dict(model.named_parameters())[n].detach()
                p.copy_(base + s * update[n] if n in update else base)
        want_m, want_s = channel_stats(captured(twin, x, twin[5], "in"))
        np.testing.assert_allclose(out["mean"]["2"][i], want_m, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(out["var"]["2"][i], want_s**2, rtol=1e-10)
        with torch.no_grad():
            assert out["loss"][i] == pytest.approx(float(F.cross_entropy(twin(x), y)), rel=1e-12)


@pytest.mark.parametrize(
    "update,match",
    [({"nope": torch.zeros(1)}, "not parameters"), ({"0.bias": torch.zeros(7)}, "shape")],
    ids=["unknown_name", "wrong_shape"],
)
def test_bad_update_is_a_clear_error(update, match):
    model = conv_net()
    batch = (torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=match):
        interpolated_step_stats(model, F.cross_entropy, batch, update)


def test_dead_channels_are_left_out_of_the_log_averages():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([1.0, 1.0, 0.0]))  # channel 2: ReLU(β) = 0
        model[1].bias.copy_(torch.tensor([0.0, 0.5, -1.0]))
    prof = depth_profile(model, (torch.randn(32, 2), None))
    stds = prof["channel_std"][0]
    assert stds[2] == 0.0
    assert prof["log10_std"][0] == pytest.approx(np.log10(stds[:2]).mean(), rel=1e-6)
    assert prof["log10_std_sd"][0] == pytest.approx(np.log10(stds[:2]).std(), rel=1e-6)
