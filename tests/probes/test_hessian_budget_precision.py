"""Hessian probes: TF32 off for their duration, budgets, per-call overhead (issues 15, 18)."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from bnlab.probes import hessian as hs
from bnlab.probes.hessian import (
    HessianBudget,
    HessianBudgetWarning,
    activation_hvp,
    hessian_eigs,
    hessian_top_eigenvalues,
    hessian_trace,
    hessian_trace_estimate,
    tf32_disabled,
)

# -- helpers --------------------------------------------------------------------------------


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


def wishart(n, seed):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=gen, dtype=torch.float64)
    return a @ a.T / n


def small_bn_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3)).double()


def bn_batch(n=16):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 5, generator=gen, dtype=torch.float64), torch.randint(0, 3, (n,))


B = torch.backends


def precision_state() -> dict[str, object]:
    """Every TF32-related flag and setting a user can read, for exact before/after checks."""

    def read(getter):
        try:
            return getter()
        except RuntimeError as err:  # torch refuses to read a legacy flag in a mixed state
            return f"refused: {str(err)[:40]}"

    state = {
        "matmul.allow_tf32": read(lambda: B.cuda.matmul.allow_tf32),
        "cudnn.allow_tf32": read(lambda: B.cudnn.allow_tf32),
        "matmul_precision": read(torch.get_float32_matmul_precision),
    }
    for i, s in enumerate(hs._precision_settings()):
        state[f"setting{i}"] = s.fp32_precision
    return state


_C = torch._C
_PAIRS = [("generic", "all"), *[(b, op) for b in ("cuda", "mkldnn")
                                for op in ("all", "matmul", "conv", "rnn")]]  # fmt: skip


@pytest.fixture
def restore_precision():
    """Whatever a test does to the global flags, put them back bit for bit afterwards.

    Reads and writes the stored values through torch's private accessors: the public
    getters refuse to read some states this file creates on purpose.
    """
    legacy = (_C._get_cublas_allow_tf32(), _C._get_cudnn_allow_tf32())
    has_api = hasattr(_C, "_get_fp32_precision_getter")
    raw = {pair: _C._get_fp32_precision_getter(*pair) for pair in _PAIRS} if has_api else {}
    yield
    _C._set_cublas_allow_tf32(legacy[0])
    _C._set_cudnn_allow_tf32(legacy[1])
    for pair, value in raw.items():
        _C._set_fp32_precision_setter(*pair, value)


START_STATES = {
    "defaults": lambda: None,
    "legacy_all_tf32_on": lambda: (setattr(B.cuda.matmul, "allow_tf32", True),
                                   setattr(B.cudnn, "allow_tf32", True)),
    "legacy_cudnn_off": lambda: setattr(B.cudnn, "allow_tf32", False),
    "matmul_precision_medium": lambda: torch.set_float32_matmul_precision("medium"),
}  # fmt: skip
NEW_API_STATES = {
    "new_api_conv_ieee_rnn_tf32": lambda: setattr(B.cudnn.conv, "fp32_precision", "ieee"),
    "new_api_matmul_tf32": lambda: setattr(B.cuda.matmul, "fp32_precision", "tf32"),
    "new_api_cuda_all_tf32": lambda: setattr(B.cudnn, "fp32_precision", "tf32"),
    "new_api_onednn_conv_bf16": lambda: setattr(B.mkldnn.conv, "fp32_precision", "bf16"),
}
if hs._precision_settings():  # torch >= 2.9: the per-operation API as well
    START_STATES.update(NEW_API_STATES)


def assert_tf32_off() -> None:
    assert B.cuda.matmul.allow_tf32 is False
    assert B.cudnn.allow_tf32 is False
    assert torch.get_float32_matmul_precision() == "highest"
    for s in hs._precision_settings():
        assert s.fp32_precision in ("none", "ieee"), s


# -- TF32 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy_only", [False, True], ids=["current_api", "legacy_api"])
@pytest.mark.parametrize("start", START_STATES.values(), ids=START_STATES.keys())
def test_tf32_disabled_turns_off_and_restores_exactly(start, legacy_only, restore_precision,
                                                      monkeypatch):  # fmt: skip
    if legacy_only:  # a torch before the fp32_precision API: only the legacy flags exist
        if start in NEW_API_STATES.values():
            pytest.skip("that torch has no per-operation fp32_precision settings to start from")
        monkeypatch.setattr(hs, "_precision_settings", lambda: [])
    start()
    before = precision_state()
    with tf32_disabled():
        assert B.cuda.matmul.allow_tf32 is False and B.cudnn.allow_tf32 is False
        if not legacy_only:
            assert_tf32_off()
    assert precision_state() == before


def test_tf32_disabled_restores_on_an_exception(restore_precision):
    B.cudnn.allow_tf32 = True
    B.cuda.matmul.allow_tf32 = True
    before = precision_state()
    with pytest.raises(RuntimeError, match="boom"), tf32_disabled():
        raise RuntimeError("boom")
    assert precision_state() == before
    assert B.cudnn.allow_tf32 is True and B.cuda.matmul.allow_tf32 is True


def _spy_grad(monkeypatch) -> list[bool]:
    """Record, at every torch.autograd.grad call, whether TF32 was off."""
    seen: list[bool] = []
    real = torch.autograd.grad

    def spy(*args, **kwargs):
        seen.append(not B.cudnn.allow_tf32 and not B.cuda.matmul.allow_tf32)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", spy)
    return seen


CURVATURE = {
    "eigs": lambda m, b: hessian_eigs(m, F.cross_entropy, b, k=2, tol=1e-8, max_iter=20),
    "trace": lambda m, b: hessian_trace(m, F.cross_entropy, b, samples=3),
    "activation_hvp": lambda m, b: activation_hvp(m, F.cross_entropy, b, 1,
                                                  [torch.ones(16, 4, dtype=torch.float64)] * 2),
}  # fmt: skip


@pytest.mark.parametrize("fn", CURVATURE.values(), ids=CURVATURE.keys())
def test_curvature_functions_run_every_pass_with_tf32_off(fn, restore_precision, monkeypatch):
    B.cudnn.allow_tf32 = True
    B.cuda.matmul.allow_tf32 = True
    before = precision_state()
    forward_flags = []
    model = small_bn_net()
    model.register_forward_pre_hook(
        lambda mod, args: forward_flags.append(not B.cudnn.allow_tf32)
    )
    seen = _spy_grad(monkeypatch)
    fn(model, bn_batch())
    assert forward_flags == [True]
    assert len(seen) >= 2 and all(seen)  # the create-graph backward and every product
    assert precision_state() == before


def test_flags_restored_when_the_model_raises(restore_precision):
    B.cudnn.allow_tf32 = True
    before = precision_state()

    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(2))

        def forward(self, x):
            raise RuntimeError("model failed")

    with pytest.raises(RuntimeError, match="model failed"):
        hessian_eigs(Broken(), identity_loss, DUMMY)
    assert precision_state() == before


# -- budget ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [({}, "hvps and/or seconds"), ({"hvps": 0}, "hvps must"), ({"hvps": 2.5}, "hvps must"),
     ({"seconds": 0.0}, "seconds must")],
    ids=["empty", "zero_hvps", "float_hvps", "zero_seconds"],
)  # fmt: skip
def test_budget_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HessianBudget(**kwargs)


def test_eigs_stop_at_the_hvp_budget_and_report_a_true_accuracy():
    q = wishart(200, seed=4)
    spectrum = np.linalg.eigvalsh(q.numpy())
    eigs = hessian_eigs(Quadratic(q), identity_loss, DUMMY, k=2, tol=1e-12, max_iter=500,
                        budget=HessianBudget(hvps=4))  # fmt: skip
    assert eigs.hvps == 4 and eigs.stopped_by == "budget" and not eigs.converged
    for value, acc in zip(eigs.values, eigs.accuracy, strict=True):
        assert acc > 1e-12  # not met: that is why it stopped
        # the reported accuracy is a guarantee: an eigenvalue lies within acc·|θ|
        assert np.min(np.abs(spectrum - value)) <= acc * abs(value) * (1 + 1e-9)


def test_eigs_without_budget_pressure_stop_on_tol():
    q = wishart(40, seed=5)
    eigs = hessian_eigs(Quadratic(q), identity_loss, DUMMY, tol=1e-8, max_iter=300,
                        budget=HessianBudget(hvps=300))  # fmt: skip
    assert eigs.stopped_by == "tol" and eigs.converged
    assert max(eigs.accuracy) <= 1e-8
    runs_out = hessian_eigs(Quadratic(q), identity_loss, DUMMY, tol=1e-12, max_iter=3)
    assert runs_out.stopped_by == "max_iter" and not runs_out.converged


def test_seconds_budget_uses_the_wall_clock(monkeypatch):
    ticks = iter(range(10_000))
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(ticks)))  # 1 s per reading
    q = wishart(100, seed=6)
    eigs = hessian_eigs(Quadratic(q), identity_loss, DUMMY, tol=1e-12, max_iter=500,
                        budget=HessianBudget(seconds=3.5))  # fmt: skip
    assert eigs.stopped_by == "budget"
    assert 1 <= eigs.hvps <= 4


def test_top_eigenvalues_warn_with_the_accuracy_when_the_budget_stops_them():
    q = wishart(200, seed=7)
    with pytest.warns(HessianBudgetWarning, match=r"3 HVPs .* relative accuracy"):
        values = hessian_top_eigenvalues(Quadratic(q), identity_loss, DUMMY, tol=1e-12,
                                         budget=HessianBudget(hvps=3))  # fmt: skip
    assert len(values) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", HessianBudgetWarning)  # converged: no warning
        hessian_top_eigenvalues(Quadratic(wishart(10, 8)), identity_loss, DUMMY, tol=1e-6,
                                budget=HessianBudget(hvps=100))  # fmt: skip


def test_trace_budget_stops_and_reports_samples_and_stderr():
    q = wishart(30, seed=9)
    est = hessian_trace_estimate(Quadratic(q), identity_loss, DUMMY, samples=50,
                                 budget=HessianBudget(hvps=5))  # fmt: skip
    assert est.samples == 5 and est.stopped_by == "budget"
    assert np.isfinite(est.stderr) and est.stderr > 0
    full = hessian_trace_estimate(Quadratic(q), identity_loss, DUMMY, samples=5,
                                  budget=HessianBudget(hvps=5))  # fmt: skip
    assert full.stopped_by == "samples" and full.samples == 5
    assert full.value == pytest.approx(est.value)  # same seed, same five probes
    with pytest.warns(HessianBudgetWarning, match=r"5 of 50 samples"):
        hessian_trace(Quadratic(q), identity_loss, DUMMY, samples=50, budget=HessianBudget(hvps=5))


def test_trace_stderr_matches_its_definition():
    q = wishart(20, seed=10)
    est = hessian_trace_estimate(Quadratic(q), identity_loss, DUMMY, samples=400, seed=3)
    off = q - torch.diag(torch.diag(q))
    se = float((2 * off.pow(2).sum()).sqrt()) / np.sqrt(400)  # exact std of one sample / √S
    assert est.stderr == pytest.approx(se, rel=0.2)


# -- per-call overhead: one graph, one host transfer per product -----------------------------


def test_one_forward_per_call_whatever_the_number_of_products():
    model = small_bn_net()
    calls = []
    model.register_forward_pre_hook(lambda mod, args: calls.append(1))
    eigs = hessian_eigs(model, F.cross_entropy, bn_batch(), k=2, tol=1e-10, max_iter=30)
    assert eigs.hvps > 3 and len(calls) == 1
    hessian_trace(model, F.cross_entropy, bn_batch(), samples=7)
    assert len(calls) == 2


def _count_host_transfers(monkeypatch) -> dict[str, int]:
    counts = {"cpu": 0, "item": 0, "float": 0}
    for name, attr in (("cpu", "cpu"), ("item", "item"), ("float", "__float__")):
        real = getattr(torch.Tensor, attr)

        def spy(self, *a, _real=real, _name=name, **k):
            counts[_name] += 1
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, attr, spy)
    return counts


def test_lanczos_moves_one_vector_to_the_host_per_product(monkeypatch):
    q = wishart(120, seed=11)
    model = Quadratic(q)
    counts = _count_host_transfers(monkeypatch)
    eigs = hessian_eigs(model, identity_loss, DUMMY, k=2, tol=1e-9, max_iter=25)
    assert eigs.hvps == 25  # no restart in 25 products (basis of 30)
    assert counts == {"cpu": eigs.hvps, "item": 0, "float": 0}


def test_trace_moves_its_samples_to_the_host_once(monkeypatch):
    model = Quadratic(wishart(50, seed=12))
    counts = _count_host_transfers(monkeypatch)
    hessian_trace_estimate(model, identity_loss, DUMMY, samples=9)
    assert counts["cpu"] == 1 and counts["item"] == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0], ids=["nan", "inf", "zero"])
def test_unusable_gradient_falls_back_to_a_random_start_on_the_device(bad):
    grad = torch.full((50,), bad, dtype=torch.float64)
    v = hs._start_vector("gradient", grad, torch.Generator().manual_seed(0))
    r = hs._random_unit(50, grad, torch.Generator().manual_seed(0))
    torch.testing.assert_close(v, r)
    good = hs._start_vector("gradient", torch.ones(50, dtype=torch.float64),
                            torch.Generator().manual_seed(0))  # fmt: skip
    assert float(good.norm()) == pytest.approx(1.0) and not torch.allclose(good, r)


# -- activation HVPs on one graph ------------------------------------------------------------


def test_activation_hvp_of_several_vectors_equals_one_call_each():
    model = small_bn_net()
    batch = bn_batch(8)
    gen = torch.Generator().manual_seed(2)
    vs = [torch.randn(8, 4, generator=gen, dtype=torch.float64) for _ in range(3)]
    together = activation_hvp(model, F.cross_entropy, batch, 1, vs)
    alone = [activation_hvp(model, F.cross_entropy, batch, 1, v) for v in vs]
    assert isinstance(together, list) and len(together) == 3
    for a, b in zip(together, alone, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_activation_hvp_checks_every_vector():
    model = small_bn_net()
    with pytest.raises(ValueError, match="empty"):
        activation_hvp(model, F.cross_entropy, bn_batch(8), 1, [])
    with pytest.raises(ValueError, match=r"v has shape \(3, 3\)"):
        activation_hvp(model, F.cross_entropy, bn_batch(8), 1,
                       [torch.ones(8, 4, dtype=torch.float64), torch.ones(3, 3)])  # fmt: skip


def test_seconds_budget_synchronizes_a_cuda_device_before_reading_the_clock(monkeypatch):
    """The CUDA branch of the budget clock, run on the CPU with the sync recorded."""
    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    cuda = torch.device("cuda")
    clock = hs._Clock(HessianBudget(seconds=1e9), device=cuda)
    assert clock.spent(3) is False and synced == [cuda]
    hs._Clock(HessianBudget(hvps=5), device=cuda).spent(3)  # no seconds cap: no sync
    hs._Clock(HessianBudget(seconds=1e9)).spent(3)  # CPU: nothing to wait for
    assert synced == [cuda]
