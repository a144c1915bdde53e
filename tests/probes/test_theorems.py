"""Santurkar Thm 4.1 at a BN site: the corrected 1/m identity holds, the printed form fails."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from bnlab.probes.theorems import bn_gradient_identity


def net(kind, seed):
    torch.manual_seed(seed)
    if kind == "linear":
        model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(inplace=True),
                              nn.Linear(5, 3))
    else:
        model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4, eps=1e-3),
                              nn.Tanh(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 2.0)
        model[1].bias.uniform_(-1.0, 1.0)
    return model.double()


def batch_for(kind, n, seed):
    gen = torch.Generator().manual_seed(seed)
    shape = (n, 6) if kind == "linear" else (n, 2, 5, 5)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64) * 3 + 1
    return x, torch.randint(0, 3, (n,), generator=gen)


def reference_lhs(model, batch):
    """Twin: ‖∂L/∂y‖² per channel from a hand-written BN in float64."""
    bn = model[1]
    y = model[0](batch[0]).detach().requires_grad_(True)
    dims = [0, *range(2, y.dim())]
    shape = [1, -1] + [1] * (y.dim() - 2)
    mu, var = y.mean(dims, keepdim=True), y.var(dims, unbiased=False, keepdim=True)
    z = bn.weight.view(shape) * (y - mu) / torch.sqrt(var + bn.eps) + bn.bias.view(shape)
    out = model[3:](F.relu(z)) if isinstance(model[2], nn.ReLU) else model[3:](torch.tanh(z))
    (g,) = torch.autograd.grad(F.cross_entropy(out, batch[1]), y)
    return g.pow(2).sum(dims).numpy()


@pytest.mark.parametrize("kind,n", [("linear", 16), ("linear", 64), ("conv", 8)],
                         ids=["linear_m16", "linear_m64", "conv_m200"])
@pytest.mark.parametrize("seed", [0, 1])
def test_corrected_identity_holds_and_printed_form_fails(kind, n, seed):
    model = net(kind, seed)
    batch = batch_for(kind, n, seed)
    out = bn_gradient_identity(model, F.cross_entropy, batch, 1)
    np.testing.assert_allclose(out["lhs"], reference_lhs(model, batch), rtol=1e-10)
    np.testing.assert_allclose(out["rhs"], out["lhs"], rtol=1e-5)
    m = out["m"]
    assert m == (n if kind == "linear" else n * 25)
    # the printed bound subtracts ⟨g,ŷ⟩²/√m > ⟨g,ŷ⟩²/m, so it undershoots the true value
    nonzero = np.abs(out["g_dot_yhat"]) > 1e-8
    assert nonzero.any()
    assert np.all(out["lhs"][nonzero] > out["rhs_printed"][nonzero])
    # and the two right sides differ exactly by the last term: b²(1/√m − (1+ε/σ̃²)/m)·γ²/σ̃²
    y = model[0](batch[0]).detach()
    dims = [0, *range(2, y.dim())]
    var_eps = (y.var(dims, unbiased=False) + model[1].eps).numpy()
    gamma2 = model[1].weight.detach().pow(2).numpy()
    factor = 1 / np.sqrt(m) - (1 + model[1].eps / var_eps) / m
    want_gap = gamma2 / var_eps * out["g_dot_yhat"] ** 2 * factor
    np.testing.assert_allclose(out["rhs"] - out["rhs_printed"], want_gap, rtol=1e-6, atol=1e-14)


def test_eps_factor_matters():
    """With a large ε (ε/σ̃² not small) the identity still holds: the (1 + ε/σ̃²) factor."""
    model = net("linear", 3)
    with torch.no_grad():
        model[0].weight.mul_(0.05)  # small σ² so ε/σ̃² is large
    model[1].eps = 0.5
    batch = batch_for("linear", 32, 3)
    out = bn_gradient_identity(model, F.cross_entropy, batch, 1)
    np.testing.assert_allclose(out["rhs"], out["lhs"], rtol=1e-5)
    assert out["eps"] == 0.5


@pytest.mark.parametrize("site,mode,match", [(1, "eval", "bn_mode='train'"),
                                             ("2", "train", "not a BatchNorm")],
                         ids=["eval_mode", "not_a_norm"])
def test_bad_use_is_a_clear_error(site, mode, match):
    model = net("linear", 0)
    with pytest.raises(ValueError, match=match):
        bn_gradient_identity(model, F.cross_entropy, batch_for("linear", 8, 0), site,
                             bn_mode=mode)
