"""Hessian probes against closed forms (½wᵀQw) and a float64 dense-Hessian twin."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from bnlab.probes.hessian import (
    activation_hvp,
    hessian_eigs,
    hessian_top_eigenvalues,
    hessian_trace,
)


class Quadratic(nn.Module):
    """forward() = ½ wᵀQw, whatever the input: its Hessian is Q."""

    def __init__(self, q: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("q", q)
        self.w = nn.Parameter(torch.randn(q.shape[0], dtype=q.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        del x
        return 0.5 * self.w @ self.q @ self.w


def identity_loss(out, target):
    del target
    return out


DUMMY = (torch.zeros(1), torch.zeros(1))


def random_sym(n, seed, indefinite=False):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=gen, dtype=torch.float64)
    q = (a + a.T) / 2 if indefinite else a @ a.T / n
    return q


@pytest.mark.parametrize(
    "n,k,indefinite",
    [(6, 1, False), (40, 3, False), (40, 4, True), (200, 2, False)],
    ids=["tiny_k1", "psd_k3", "indefinite_k4", "restarts_n200_k2"],
)
def test_top_eigenvalues_match_numpy(n, k, indefinite):
    q = random_sym(n, seed=n + k, indefinite=indefinite)
    model = Quadratic(q)
    got = hessian_top_eigenvalues(model, identity_loss, DUMMY, k=k, tol=1e-10, max_iter=400)
    want = np.sort(np.linalg.eigvalsh(q.numpy()))[::-1][:k]
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


def test_lanczos_uses_fewer_hvps_than_power_iteration():
    q = random_sym(300, seed=3)
    lam = np.sort(np.linalg.eigvalsh(q.numpy()))[::-1]
    eigs = hessian_eigs(Quadratic(q), identity_loss, DUMMY, tol=1e-6, max_iter=500)
    assert eigs.converged
    assert abs(eigs.values[0] - lam[0]) <= 1e-6 * lam[0]
    # power iteration from a random start: count products to the same accuracy
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(300, generator=gen, dtype=torch.float64)
    steps = 0
    while True:
        v = q @ v / (q @ v).norm()
        steps += 1
        if abs(float(v @ q @ v) - lam[0]) <= 1e-6 * lam[0] or steps > 5000:
            break
    assert eigs.hvps < steps, (eigs.hvps, steps)


def test_trace_exact_for_diagonal_q():
    q = torch.diag(torch.linspace(-2.0, 5.0, 30, dtype=torch.float64))
    got = hessian_trace(Quadratic(q), identity_loss, DUMMY, samples=3)
    assert got == pytest.approx(float(q.trace()), abs=1e-12)


def test_trace_unbiased_for_dense_q():
    q = random_sym(20, seed=1)
    got = hessian_trace(Quadratic(q), identity_loss, DUMMY, samples=1000)
    # std of one sample: sqrt(2 Σ_{i≠j} q_ij²); 5 standard errors (1000 samples)
    off = q - torch.diag(torch.diag(q))
    se = float((2 * off.pow(2).sum()).sqrt()) / np.sqrt(1000)
    assert abs(got - float(q.trace())) < 5 * se


def small_bn_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3)
    ).double()


def dense_hessian(model, batch, mode):
    """float64 twin: the full Hessian of the same net written out by hand, by torch.func."""
    lin0, bn, lin3 = model[0], model[1], model[3]
    shapes = [p.shape for p in model.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(flat):
        w0, b0, gamma, beta, w3, b3 = torch.split(flat, [s.numel() for s in shapes])
        y = batch[0] @ w0.view(lin0.weight.shape).T + b0  # (N, 4)
        if mode == "train":
            mu, var = y.mean(0), y.var(0, unbiased=False)
        else:
            mu, var = bn.running_mean, bn.running_var
        z = gamma * (y - mu) / torch.sqrt(var + bn.eps) + beta
        out = torch.tanh(z) @ w3.view(lin3.weight.shape).T + b3
        return F.cross_entropy(out, batch[1])

    return torch.func.hessian(loss)(flat0)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_eigenvalues_and_trace_match_dense_float64_twin(mode):
    model = small_bn_net()
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    batch = (torch.randn(16, 5, dtype=torch.float64), torch.randint(0, 3, (16,)))
    h = dense_hessian(model, batch, mode).numpy()
    want = np.sort(np.linalg.eigvalsh(h))[::-1][:2]
    got = hessian_top_eigenvalues(model, F.cross_entropy, batch, k=2, bn_mode=mode,
                                  tol=1e-10, max_iter=200)
    np.testing.assert_allclose(got, want, rtol=1e-7)
    tr = hessian_trace(model, F.cross_entropy, batch, bn_mode=mode, samples=200)
    se = np.sqrt(2 * (h**2).sum() - 2 * (np.diag(h) ** 2).sum()) / np.sqrt(200)
    assert abs(tr - np.trace(h)) < 5 * se


def test_layer_restriction_is_the_sub_hessian():
    model = small_bn_net()
    batch = (torch.randn(16, 5, dtype=torch.float64), torch.randint(0, 3, (16,)))
    h = dense_hessian(model, batch, "train").numpy()
    # parameters in order: 0.weight (20), 0.bias (4), 1.weight (4), 1.bias (4), 3.*
    block = h[24:32, 24:32]  # the BN layer's γ and β
    want = np.sort(np.linalg.eigvalsh(block))[::-1][:1]
    got = hessian_top_eigenvalues(model, F.cross_entropy, batch, layer=1, tol=1e-10)
    np.testing.assert_allclose(got, want, rtol=1e-7)
    got_named = hessian_top_eigenvalues(model, F.cross_entropy, batch, layer="1", tol=1e-10)
    np.testing.assert_allclose(got_named, want, rtol=1e-7)


def test_activation_hvp_matches_dense_twin():
    model = small_bn_net()
    batch = (torch.randn(8, 5, dtype=torch.float64), torch.randint(0, 3, (8,)))
    y = model[0](batch[0]).detach()  # the pre-BN outputs, (8, 4)
    tail = model[1:]

    def loss_of_y(yy):
        return F.cross_entropy(tail(yy), batch[1])

    h = torch.autograd.functional.hessian(loss_of_y, y).reshape(32, 32)
    v = torch.randn(8, 4, dtype=torch.float64)
    got = activation_hvp(model, F.cross_entropy, batch, 1, v)
    torch.testing.assert_close(got.reshape(-1), h @ v.reshape(-1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"k": 0}, "k must"), ({"tol": 0.0}, "tol"), ({"k": 200}, "exceeds"),
     ({"bn_mode": "batch"}, "bn_mode")],
    ids=["k_zero", "tol_zero", "k_too_big", "bad_bn_mode"],
)
def test_bad_arguments_are_clear_errors(kwargs, match):
    model = small_bn_net()
    batch = (torch.randn(4, 5, dtype=torch.float64), torch.randint(0, 3, (4,)))
    with pytest.raises(ValueError, match=match):
        hessian_eigs(model, F.cross_entropy, batch, **kwargs)


class TwoBlocks(nn.Module):
    """loss = ½ aᵀ diag(da) a + ½ bᵀ diag(db) b, with a and b in two modules."""

    def __init__(self, da: torch.Tensor, db: torch.Tensor) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(len(da), 1, bias=False), nn.Linear(len(db), 1, bias=False)
        self.register_buffer("da", da)
        self.register_buffer("db", db)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        del x
        wa, wb = self.a.weight[0], self.b.weight[0]
        return 0.5 * (wa * self.da * wa).sum() + 0.5 * (wb * self.db * wb).sum()


def test_trace_restricted_to_a_layer_is_that_blocks_trace():
    da = torch.tensor([1.0, -2.0, 4.0], dtype=torch.float64)
    db = torch.tensor([10.0, 20.0], dtype=torch.float64)
    model = TwoBlocks(da, db).double()
    assert hessian_trace(model, identity_loss, DUMMY, samples=2) == pytest.approx(33.0)
    assert hessian_trace(model, identity_loss, DUMMY, samples=2, layer="a") == pytest.approx(3.0)
    assert hessian_trace(model, identity_loss, DUMMY, samples=2, layer="b") == pytest.approx(30.0)


@pytest.mark.parametrize("tol", [1e-2, 1e-3, 1e-5], ids=["tol1e-2", "tol1e-3", "tol1e-5"])
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tol_is_the_residual_guarantee(tol, seed, k):
    """Each value has an eigenvalue of Q within tol·|θ| (the residual bound), and at a
    tight tol those are the top k: on this clustered (Wishart) top spectrum a loose tol
    may legitimately stop on a value just below the largest."""
    q = random_sym(300, seed=10 + seed)
    spectrum = np.linalg.eigvalsh(q.numpy())
    eigs = hessian_eigs(Quadratic(q), identity_loss, DUMMY, k=k, tol=tol, max_iter=500,
                        seed=seed)
    assert eigs.converged
    for value, res in zip(eigs.values, eigs.residuals, strict=True):
        assert res <= tol * abs(value)
        assert np.min(np.abs(spectrum - value)) <= res * (1 + 1e-9)
    if tol <= 1e-5:
        top = np.sort(spectrum)[::-1][:k]
        np.testing.assert_allclose(eigs.values, top, rtol=1e-4)


@pytest.mark.parametrize("start", ["gradient", "random"])
def test_both_start_vectors_find_the_top_eigenvalues(start):
    q = random_sym(80, seed=11, indefinite=True)
    got = hessian_eigs(Quadratic(q), identity_loss, DUMMY, k=3, tol=1e-10, max_iter=300,
                       start=start)
    want = np.sort(np.linalg.eigvalsh(q.numpy()))[::-1][:3]
    np.testing.assert_allclose(got.values, want, rtol=1e-8, atol=1e-10)


def test_gradient_start_needs_fewer_products_when_the_gradient_is_in_the_top_space():
    # Diagonal Q with a gap; w mostly along the top eigenvector, so g = Qw is too.
    diag = torch.cat([torch.tensor([10.0, 9.0]), torch.linspace(0.1, 5.0, 198)]).double()
    model = Quadratic(torch.diag(diag))
    with torch.no_grad():
        model.w.copy_(torch.randn(200, generator=torch.Generator().manual_seed(0),
                                  dtype=torch.float64) * 0.01)
        model.w[0] = 1.0
    kw = dict(k=1, tol=1e-6, max_iter=200)
    grad_start = hessian_eigs(model, identity_loss, DUMMY, start="gradient", **kw)
    rand_start = hessian_eigs(model, identity_loss, DUMMY, start="random", **kw)
    assert grad_start.values[0] == pytest.approx(10.0, rel=1e-6)
    assert rand_start.values[0] == pytest.approx(10.0, rel=1e-6)
    assert grad_start.hvps < rand_start.hvps


def test_zero_gradient_falls_back_to_a_random_start():
    q = random_sym(30, seed=5)
    model = Quadratic(q)
    with torch.no_grad():
        model.w.zero_()  # a stationary point: g = 0
    got = hessian_top_eigenvalues(model, identity_loss, DUMMY, tol=1e-10, max_iter=200)
    assert got[0] == pytest.approx(float(np.linalg.eigvalsh(q.numpy()).max()), rel=1e-8)
