"""internal_covariate_shift against a float64 twin that really steps a copied optimizer."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from _probe_helpers import assert_same, fingerprint
from torch import nn

from bnlab.probes.ics import internal_covariate_shift


def _mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 6), nn.BatchNorm1d(6),
        nn.ReLU(), nn.Linear(6, 3),
    ).double()


def _twin_ics(model: nn.Module, opt: torch.optim.Optimizer, x, y, layer: str) -> tuple:
    """Definition 2.1 by hand: copy model and optimizer, step, re-set layers >= i, regrad."""
    names = [n for n, _ in model.named_parameters()]
    owner = layer.rpartition(".")[0]
    first = min(i for i, n in enumerate(names) if n.startswith(owner + "."))
    m1 = copy.deepcopy(model)
    o1 = type(opt)(m1.parameters(), **opt.defaults)
    o1.load_state_dict(copy.deepcopy(opt.state_dict()))
    m1.zero_grad()
    F.cross_entropy(m1(x), y).backward()
    G = dict(m1.named_parameters())[layer].grad.clone()
    o1.step()  # the real update, all layers
    with torch.no_grad():  # undo it for layer i and everything after it
        pairs = zip(m1.parameters(), model.parameters(), strict=True)
        for i, (p1, p0) in enumerate(pairs):
            if i >= first:
                p1.copy_(p0)
    m1.zero_grad()
    F.cross_entropy(m1(x), y).backward()
    G2 = dict(m1.named_parameters())[layer].grad
    l2 = float((G - G2).norm())
    cos = float((G * G2).sum() / (G.norm() * G2.norm()))
    return l2, cos


def _warm(model: nn.Module, opt: torch.optim.Optimizer, x, y) -> None:
    for _ in range(2):  # give momentum / Adam moments non-trivial state
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.3),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9, weight_decay=1e-3),
    "adam": lambda p: torch.optim.Adam(p, lr=0.05),
}


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_ics_matches_twin_that_steps_a_copied_optimizer(opt_name: str) -> None:
    torch.manual_seed(0)
    model = _mlp().train()
    opt = OPTIMIZERS[opt_name](model.parameters())
    x, y = torch.randn(16, 5, dtype=torch.float64), torch.randint(0, 3, (16,))
    _warm(model, opt, x, y)
    before = fingerprint(model, opt)
    got = internal_covariate_shift(model, F.cross_entropy, (x, y), opt, ["3", "6.weight", 2])
    assert_same(before, fingerprint(model, opt))
    for key, pname in [("3", "3.weight"), ("6.weight", "6.weight"), ("2", "3.weight")]:
        l2, cos = _twin_ics(model, opt, x, y, pname)
        assert got[key]["l2"] == pytest.approx(l2, rel=1e-9, abs=1e-12)
        assert got[key]["cos"] == pytest.approx(cos, rel=1e-9)
    assert got["3"]["l2"] > 0  # the measurement is not trivially zero


def test_first_layer_has_no_ics() -> None:
    torch.manual_seed(1)
    model = _mlp().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(8, 5, dtype=torch.float64), torch.randint(0, 3, (8,))
    got = internal_covariate_shift(model, F.cross_entropy, (x, y), opt, ["0"])
    assert got["0"]["l2"] == 0.0
    assert got["0"]["cos"] == pytest.approx(1.0, abs=1e-12)


def test_deep_linear_network_by_hand() -> None:
    """3-layer DLN, L = ½‖W3 W2 W1 x − y‖², SGD lr: G and G' of W3 in closed form."""
    torch.manual_seed(2)
    W1, W2, W3 = (torch.randn(3, 3, dtype=torch.float64) * 0.7 for _ in range(3))
    x, y = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    lr = 0.05

    def grads(A1, A2, A3):  # rows of x are samples: out = x A1ᵀ A2ᵀ A3ᵀ
        h1, h2 = x @ A1.T, x @ A1.T @ A2.T
        r = h2 @ A3.T - y  # (N, 3) residual
        d2 = r @ A3
        d1 = d2 @ A2
        return d1.T @ x, d2.T @ h1, r.T @ h2  # ∂L/∂A1, ∂L/∂A2, ∂L/∂A3

    g1, g2, g3 = grads(W1, W2, W3)
    G3_prime = grads(W1 - lr * g1, W2 - lr * g2, W3)[2]
    G2_prime = grads(W1 - lr * g1, W2, W3)[1]

    model = nn.Sequential(*(nn.Linear(3, 3, bias=False) for _ in range(3))).double()
    with torch.no_grad():
        for lin, W in zip(model, (W1, W2, W3), strict=True):
            lin.weight.copy_(W)
    loss_fn = lambda out, t: 0.5 * ((out - t) ** 2).sum()  # noqa: E731
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    got = internal_covariate_shift(model, loss_fn, (x, y), opt, ["2", "1"])
    assert got["2"]["l2"] == pytest.approx(float((g3 - G3_prime).norm()), rel=1e-10)
    assert got["1"]["l2"] == pytest.approx(float((g2 - G2_prime).norm()), rel=1e-10)
    cos = float((g3 * G3_prime).sum() / (g3.norm() * G3_prime.norm()))
    assert got["2"]["cos"] == pytest.approx(cos, rel=1e-10)


def test_order_overrides_registration_order() -> None:
    """With the layers listed in reverse, layer '6' has no layers before it: no ICS."""
    torch.manual_seed(3)
    model = _mlp().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(8, 5, dtype=torch.float64), torch.randint(0, 3, (8,))
    order = [n for n, _ in model.named_parameters()][::-1]
    got = internal_covariate_shift(model, F.cross_entropy, (x, y), opt, ["6"], order=order)
    assert got["6"]["l2"] == 0.0
    assert internal_covariate_shift(model, F.cross_entropy, (x, y), opt, ["6"])["6"]["l2"] > 0


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        ([99], "out of range"),
        (["nope"], "no module named"),
        (["2"], "no 'weight' parameter"),  # ReLU
    ],
    ids=["bad_index", "bad_name", "no_weight"],
)
def test_bad_layers_are_clear_errors(layers, match: str) -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 5, dtype=torch.float64), torch.randint(0, 3, (4,))
    with pytest.raises(ValueError, match=match):
        internal_covariate_shift(model, F.cross_entropy, (x, y), opt, layers)
