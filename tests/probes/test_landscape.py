"""landscape and relative_loss: closed forms on ½wᵀQw and a float64 loop twin."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _probe_helpers import assert_same, fingerprint, mlp_bn_noisy_dropout
from torch import nn

from bnlab.probes.landscape import DEFAULT_ETAS, landscape, relative_loss


class Quadratic(nn.Module):
    """L(w) = ½ wᵀQw, exposed through the (model, loss_fn, batch) convention."""

    def __init__(self, Q: torch.Tensor, w: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("Q", Q)
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.w @ self.Q @ self.w + 0 * x.sum()


def _quad_case(seed: int) -> tuple[Quadratic, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(6, 6, generator=g, dtype=torch.float64)
    Q = A @ A.T + 0.1 * torch.eye(6, dtype=torch.float64)
    return Quadratic(Q, torch.randn(6, generator=g, dtype=torch.float64)), Q


@pytest.mark.parametrize("batched", [True, False], ids=["vmap", "loop"])
def test_quadratic_closed_forms(batched: bool) -> None:
    model, Q = _quad_case(0)
    w = model.w.detach().clone()
    loss_fn = lambda out, t: out  # noqa: E731
    batch = (torch.zeros(1, dtype=torch.float64), torch.zeros(1))
    res = landscape(model, loss_fn, batch, lr=0.01, multipliers=(0.5, 1, 2, 4), batched=batched)
    g = Q @ w
    Qg = float((Q @ g).norm())
    for eta, loss, change in zip(res["eta"], res["loss"], res["grad_change"], strict=True):
        v = w - eta * g
        assert loss == pytest.approx(float(0.5 * v @ Q @ v), rel=1e-12)
        assert change == pytest.approx(eta * Qg, rel=1e-10)  # ‖g − Q(w − ηg)‖ = η‖Qg‖
    beta = Qg / float(g.norm())
    assert res["beta"] == pytest.approx(beta, rel=1e-10)
    assert res["beta"] <= float(torch.linalg.eigvalsh(Q).max()) * (1 + 1e-12)
    assert res["eta"] == pytest.approx([0.005, 0.01, 0.02, 0.04])


def _twin_landscape(model: nn.Module, x, y, etas) -> tuple[list[float], list[float]]:
    """Float64 loop: copy the model, set w − ηg by hand, same dropout/noise seed each point."""
    def loss_and_grad(m: nn.Module, seed_state, noise) -> tuple[float, list[torch.Tensor]]:
        torch.set_rng_state(seed_state)
        m[5].set_noise_state(copy.deepcopy(noise))
        m.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in m.parameters()]

    rng, noise = torch.get_rng_state(), model[5].noise_state()
    base = copy.deepcopy(model)
    _, g = loss_and_grad(base, rng, noise)
    losses, changes = [], []
    for eta in etas:
        m = copy.deepcopy(model)
        with torch.no_grad():
            for p, gi in zip(m.parameters(), g, strict=True):
                p.sub_(eta * gi)
        loss, gk = loss_and_grad(m, rng, noise)
        losses.append(loss)
        sq = sum(((a - b) ** 2).sum() for a, b in zip(g, gk, strict=True))
        changes.append(float(torch.sqrt(sq)))
    torch.set_rng_state(rng)
    return losses, changes


@pytest.mark.parametrize("batched", [True, False], ids=["vmap", "loop"])
def test_landscape_matches_float64_twin_with_noise_and_dropout(batched: bool) -> None:
    torch.manual_seed(4)
    model = mlp_bn_noisy_dropout().double().train()
    x, y = torch.randn(12, 6, dtype=torch.float64), torch.randint(0, 3, (12,))
    before = fingerprint(model)
    res = landscape(model, F.cross_entropy, (x, y), lr=0.1, batched=batched)
    assert_same(before, fingerprint(model))
    assert res["batched"] is batched
    losses, changes = _twin_landscape(model, x, y, res["eta"])
    assert res["loss"] == pytest.approx(losses, rel=1e-10)
    assert res["grad_change"] == pytest.approx(changes, rel=1e-8)
    betas = [c / (eta * res["grad_norm"]) for c, eta in zip(changes, res["eta"], strict=True)]
    assert res["beta"] == pytest.approx(max(betas), rel=1e-8)


def test_eval_mode_uses_running_stats() -> None:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2)).double()
    model[1].running_mean.uniform_(-1, 1)
    model.train()
    x, y = torch.randn(6, 4, dtype=torch.float64), torch.randint(0, 2, (6,))
    res = landscape(model, F.cross_entropy, (x, y), lr=0.1, multipliers=(1,), bn_mode="eval")
    twin = copy.deepcopy(model).eval()
    assert res["loss0"] == pytest.approx(float(F.cross_entropy(twin(x), y)), rel=1e-12)
    assert model[1].training  # the mode is put back


def test_relative_loss_matches_closed_form_on_quadratic() -> None:
    model, Q = _quad_case(1)
    w = model.w.detach().clone()
    loss_fn = lambda out, t: out  # noqa: E731
    res = relative_loss(model, loss_fn, (torch.zeros(1, dtype=torch.float64), torch.zeros(1)))
    assert len(res["eta"]) == 17
    assert res["eta"] == pytest.approx(list(np.logspace(-5, -1, 17)))
    assert res["eta"] == pytest.approx(list(DEFAULT_ETAS))
    g = Q @ w
    L0 = float(0.5 * w @ Q @ w)
    expected = [float(0.5 * (w - e * g) @ Q @ (w - e * g)) / L0 for e in res["eta"]]
    assert res["relative_loss"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs", [{"lr": 0.0}, {"lr": 0.1, "multipliers": ()}], ids=["zero_lr", "empty"]
)
def test_bad_grid_is_a_clear_error(kwargs) -> None:
    model, _ = _quad_case(2)
    with pytest.raises(ValueError, match="> 0"):
        landscape(model, lambda o, t: o, (torch.zeros(1), torch.zeros(1)), **kwargs)


def test_default_loops_on_cpu_and_agrees_with_vmap() -> None:
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2)).double()
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 2, (8,))
    default = landscape(model, F.cross_entropy, (x, y), lr=0.1)
    batched = landscape(model, F.cross_entropy, (x, y), lr=0.1, batched=True)
    assert default["batched"] is False and batched["batched"] is True
    assert default["loss"] == pytest.approx(batched["loss"], rel=1e-10)
    assert default["grad_change"] == pytest.approx(batched["grad_change"], rel=1e-8)
