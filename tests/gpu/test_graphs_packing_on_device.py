"""Graph mode and packing on a device: captured steps equal eager ones, packed runs lone ones.

Each test runs on the CPU (graph mode there is the eager twin, ``GraphSteps(capture=False)``,
so the test's own logic is checked everywhere) and on CUDA (marker ``cuda``; skipped with
the reason without a GPU), where the graphs are real and each packed run has its own
stream. On CUDA the comparisons hold to float tolerance (cuDNN may pick other
algorithms), while the random streams (dropout, noisy BN) must advance exactly alike.
"""

from __future__ import annotations

import pytest
import torch
from _devices import DEVICES, NO_CUDA
from torch import nn

from bnlab.errors import UserError
from bnlab.layers import create_norm
from bnlab.probes.activations import ActivationStatsProbe
from bnlab.probes.base import Probe, Schedule
from bnlab.sweep.packed import Lane
from bnlab.train import SGD, MemorySink, Step, TrainRun, build_optimizer
from bnlab.train.graphs import GraphSteps

CE = nn.functional.cross_entropy


class Batches:
    def __init__(self, x, y, batch_size):
        self.x, self.y, self.bs = x, y, batch_size
        self.device = x.device

    def __len__(self):
        return len(self.x) // self.bs

    def epoch(self, e, start=0):
        perm = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(e))
        perm = perm.to(self.device)
        for i in range(start, len(self)):
            idx = perm[i * self.bs : (i + 1) * self.bs]
            yield self.x[idx], self.y[idx]


def conv_model(device, momentum=0.1):
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), create_norm("bn", 8, momentum=momentum),
        nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, bias=False), create_norm("noisy_bn", 8),
        nn.ReLU(), nn.Dropout(0.2), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4),
    ).to(device)  # fmt: skip


def make_run(device, graphs, *, seed=0, steps=30, probes=(), ckpt=None, ckpt_every=0, sink=None,
             log_every=5):  # fmt: skip
    device = torch.device(device)
    torch.manual_seed(seed)
    model = conv_model(device)
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(16 * 50, 3, 8, 8, generator=gen).to(device)
    y = torch.randint(4, (16 * 50,), generator=gen).to(device)
    opt = build_optimizer(SGD(0.05, momentum=0.9), model.parameters())
    run = TrainRun(model, Batches(x, y, 16), CE, opt, steps=steps, schedule=Step(10, 0.5),
                   probes=probes, sink=sink if sink is not None else MemorySink(),
                   log_every=log_every, evaluate=lambda m: {"acc": float(m(x[:64]).sum())},
                   eval_every=10, checkpoint_dir=ckpt, checkpoint_every=ckpt_every,
                   compile="graphs" if graphs and device.type == "cuda" else "none")  # fmt: skip
    if graphs and device.type == "cpu":
        run.graph = GraphSteps(model, CE, opt, capture=False)
    return model, run


def rng_states(model):
    cuda = next(model.parameters()).is_cuda
    return [torch.cuda.get_rng_state() if cuda else torch.get_rng_state(),
            model[4].noise_state()["rng"]]


def assert_close_runs(a, b):
    (model_a, sink_a, rng_a), (model_b, sink_b, rng_b) = a, b
    rows_a, rows_b = sink_a.metrics, sink_b.metrics
    assert [(s, n) for s, n, _ in rows_a] == [(s, n) for s, n, _ in rows_b]
    torch.testing.assert_close(torch.tensor([v for _, _, v in rows_a]),
                               torch.tensor([v for _, _, v in rows_b]), rtol=1e-4, atol=1e-5)
    for p, q in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-5)
    for u, v in zip(rng_a, rng_b, strict=True):  # the random streams advance exactly alike
        assert torch.equal(u, v)


def trained(device, graphs, **kw):
    model, run = make_run(device, graphs, **kw)
    run.run()
    return model, run._loop.sink, rng_states(model), run


@pytest.mark.parametrize("device", DEVICES)
def test_captured_steps_equal_eager_ones(device):
    probes = lambda: [ActivationStatsProbe([1], schedule=7)]  # noqa: E731
    *eager, _ = trained(device, False, probes=probes())
    *graph, run = trained(device, True, probes=probes())
    assert_close_runs(eager, graph)
    counts = run.graph.counts
    # three LR values (Step(10)), probes due at 0, 7, 14, 21, 28
    assert counts["captures"] == 3 and counts["replays"] >= 15, counts


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_replayed_steps_never_wait_for_the_device():
    _, run = make_run("cuda", True, steps=60, log_every=100)
    run.start()
    for _ in range(12):  # warm-up and capture
        run.advance()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(7):  # steps 12-18: no evaluation, log read or epoch boundary
            run.advance()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert run.graph.counts["replays"] >= 7


class Stopper(Probe):
    """Interrupts the run at ``step`` when armed (a due probe: that step is eager)."""

    def __init__(self, step, armed):
        super().__init__(Schedule(steps={step}))
        self.armed = armed

    def on_step(self, ctx):
        if self.armed:
            raise KeyboardInterrupt


@pytest.mark.parametrize("device", DEVICES)
def test_graph_mode_resumes_from_a_checkpoint(device, tmp_path):
    whole = trained(device, True, steps=24, probes=[Stopper(14, armed=False)])[:3]
    sink = MemorySink()
    _, first = make_run(device, True, steps=24, ckpt=tmp_path, ckpt_every=8, sink=sink,
                        probes=[Stopper(14, armed=True)])  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        first.run()
    kept = MemorySink()
    kept.metrics.extend(r for r in sink.metrics if r[0] < 8)
    model, again = make_run(device, True, steps=24, ckpt=tmp_path, ckpt_every=8, sink=kept,
                            probes=[Stopper(14, armed=False)])  # fmt: skip
    assert again.run().resumed_from == 8
    # as the store keeps them: one row per (step, name), the last written
    whole[1].metrics[:] = as_stored(whole[1].metrics)
    kept.metrics[:] = as_stored(kept.metrics)
    assert_close_runs(whole, (model, kept, rng_states(model)))


def as_stored(rows):
    return sorted({(s, n): (s, n, v) for s, n, v in rows}.values())


@pytest.mark.parametrize("graphs", [False, True], ids=["eager", "graphs"])
@pytest.mark.parametrize("device", DEVICES)
def test_packed_runs_on_streams_equal_runs_alone(device, graphs):
    alone = [trained(device, graphs, seed=s)[:3] for s in range(3)]
    runs, lanes = [], []
    for s in range(3):  # a lane takes the global RNG streams its run was started with
        runs.append(make_run(device, graphs, seed=s))
        lanes.append(Lane(runs[-1][1].start()))
    while any([lane.advance() for lane in lanes]):  # a list: every lane advances
        pass
    for lane in lanes:
        lane.join()
        lane.run.finish()
    for (model, run), lane, ref in zip(runs, lanes, alone, strict=True):
        with lane.rng.active():
            states = rng_states(model)
        assert_close_runs(ref, (model, run._loop.sink, states))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_cumulative_average_norms_are_refused():
    torch.manual_seed(0)
    model = conv_model("cuda", momentum=None)
    opt = build_optimizer(SGD(0.1), model.parameters())
    x = torch.rand(32, 3, 8, 8, device="cuda")
    with pytest.raises(UserError, match="momentum=None"):
        TrainRun(model, Batches(x, x[:, 0, 0, 0].long(), 8), CE, opt, steps=2,
                 compile="graphs")  # fmt: skip
