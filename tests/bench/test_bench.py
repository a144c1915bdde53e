"""bnlab.bench: every table runs (quick dry runs on CPU), counts are right, baselines agree."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnlab.bench import BENCHES, run_bench
from bnlab.bench._opcount import count_ops
from bnlab.bench._timing import resolve_device
from bnlab.bench.hessian import power_iteration
from bnlab.layers import list_norms
from bnlab.probes.hessian import hessian_eigs


def test_unknown_benchmark_lists_the_choices():
    with pytest.raises(ValueError, match="layers, probes, loop, hessian, graphs, packing, all"):
        run_bench("speed", "cpu")


def test_cuda_that_is_absent_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_layers_table_states_threads_and_has_every_norm():
    text = run_bench("layers", "cpu", quick=True, threads=1)
    assert "1 CPU threads" in text and "device cpu" in text
    for name in [*list_norms(), "torch.nn.BatchNorm2d"]:
        assert f"  {name} " in text, name
    assert "cuda-path k/p" in text  # on the CPU: what a CUDA device would launch


def test_loop_table_runs():
    text = run_bench("loop", "cpu", quick=True, threads=1)
    assert text.count("ratio") == 2


@pytest.mark.slow
def test_probes_and_hessian_tables_run():
    probes = run_bench("probes", "cpu", quick=True, threads=1)
    assert "ics (L=2)" in probes and "activation probe in a step" in probes
    assert "hessian top-1 tol 1e-3 (train)" in probes
    hessian = run_bench("hessian", "cpu", quick=True, threads=1)
    assert "reference λ_max" in hessian and "bnlab phases" in hessian


def test_hessian_table_falls_back_to_its_own_power_iteration(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyhessian", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "pyhessian.hessian", None)
    from bnlab.bench import hessian

    assert hessian._baseline_name() == "power-it"


@pytest.mark.parametrize(
    "fn,kernels,passes",
    [(lambda x: x * 2, 1, 2), (lambda x: x.view(-1).unsqueeze(0), 0, 0),
     (lambda x: x.add_(1).sum(), 2, 3)],
    ids=["mul", "views_are_free", "inplace_then_reduce"],
)  # fmt: skip
def test_op_counter(fn, kernels, passes):
    x = torch.ones(4, 5)
    c = count_ops(lambda: fn(x), x.numel())
    assert (c.kernels, c.passes) == (kernels, passes)


def test_op_counter_sees_the_backward():
    x = torch.randn(8, 3, 4, requires_grad=True)
    bn = nn.BatchNorm1d(3)
    c = count_ops(lambda: bn(x).backward(torch.ones_like(x)), x.numel())
    assert c.kernels >= 3  # count, forward kernel, backward kernel
    assert c.passes >= 5  # read x, write y; read g, read x, write dx


def test_power_iteration_baseline_finds_the_top_eigenvalue():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    batch = (torch.randn(20, 5, dtype=torch.float64), torch.randint(0, 3, (20,)))
    want = hessian_eigs(model, F.cross_entropy, batch, tol=1e-10, max_iter=200).values[0]
    got, hvps = power_iteration(model, batch, tol=1e-12, max_iter=2000)
    assert got == pytest.approx(want, rel=1e-6) and hvps > 1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("which", BENCHES)
def test_tables_run_on_cuda(which):
    assert "device cuda" in run_bench(which, "cuda", quick=True)


def test_timing_waits_for_cuda_only(monkeypatch):
    from bnlab.bench import _timing

    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    _timing.sync(torch.device("cpu"))
    _timing.sync(torch.device("cuda"))
    assert synced == [torch.device("cuda")]
    times = _timing.round_robin({"a": lambda: None, "b": lambda: None}, 2, torch.device("cuda"))
    assert set(times) == {"a", "b"} and len(synced) > 1
