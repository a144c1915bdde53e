"""gradient_explosion_rate: Yang et al.'s π/(π−1) with BN, 1 without, and a float64 twin."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from bnlab.probes.explosion import gradient_explosion_rate

YANG = math.pi / (math.pi - 1)  # large-batch, wide-net rate for BN → ReLU (PAPERS.md §4)
WIDTH, DEPTH = 256, 12


def kaiming_mlp(bn, seed, width=WIDTH, depth=DEPTH, d_in=32):
    torch.manual_seed(seed)
    layers, d = [], d_in
    for _ in range(depth):
        lin = nn.Linear(d, width, bias=False)
        nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        layers += [lin, nn.BatchNorm1d(width) if bn else nn.Identity(), nn.ReLU(inplace=True)]
        d = width
    layers.append(nn.Linear(d, 10))
    return nn.Sequential(*layers).double()


def rate(bn, batch_size, seeds=(0, 1, 2)):
    out = []
    for seed in seeds:
        model = kaiming_mlp(bn, seed)
        gen = torch.Generator().manual_seed(100 + seed)
        x = torch.randn(batch_size, 32, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 10, (batch_size,), generator=gen)
        names = [str(3 * i + 1) for i in range(DEPTH)]  # the norm (or Identity) modules
        out.append(gradient_explosion_rate(model, F.cross_entropy, (x, y), layers=names)["mean"])
    return sum(out) / len(out)


def test_bn_rate_moves_toward_pi_over_pi_minus_one_as_batch_grows():
    gaps = [abs(rate(True, b) - YANG) for b in (8, 64, 512)]
    assert gaps[0] > gaps[1] > gaps[2], gaps
    assert gaps[2] < 0.02 * YANG  # within 2% at batch 512, width 256, 3 seeds


def test_rate_without_bn_is_one():
    for b in (16, 256):
        assert rate(False, b) == pytest.approx(1.0, abs=0.03)


def test_ratios_match_a_float64_twin_and_default_layers_are_norm_sites():
    model = kaiming_mlp(True, seed=5, width=16, depth=6)
    x, y = torch.randn(32, 32, dtype=torch.float64), torch.randint(0, 10, (32,))
    got = gradient_explosion_rate(model, F.cross_entropy, (x, y))  # default: 6 BN sites
    # twin: run the layers by hand, keeping every BN output, and differentiate
    h, outs = x, []
    for i, layer in enumerate(model):
        h = layer(h)
        if isinstance(layer, nn.BatchNorm1d):
            outs.append(h)
            h = h.clone()  # the inplace ReLU must not overwrite the kept output
        _ = i
    grads = torch.autograd.grad(F.cross_entropy(h, y), outs)
    sq = [float(g.pow(2).sum()) for g in grads]
    want = [sq[i] / sq[i + 1] for i in range(5)]
    assert got["ratios"] == pytest.approx(want, rel=1e-10)
    assert got["mean"] == pytest.approx(sum(want[1:4]) / 3, rel=1e-10)  # middle half of 5


@pytest.mark.parametrize("layers,match", [(["1"], "at least 2"), (["1", "nope"], "no module")],
                         ids=["one_layer", "unknown_name"])
def test_bad_layers_are_clear_errors(layers, match):
    model = kaiming_mlp(True, seed=0, width=8, depth=2)
    batch = (torch.randn(4, 32, dtype=torch.float64), torch.randint(0, 10, (4,)))
    with pytest.raises(ValueError, match=match):
        gradient_explosion_rate(model, F.cross_entropy, batch, layers=layers)
