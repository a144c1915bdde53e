"""Graph mode's CPU side: the capturable step equals the loop's update bit for bit.

``GraphSteps(capture=False)`` runs every bookkeeping decision of graph mode (warm-up, the
static buffers, one graph per optimizer-hyperparameter value, eager updates where probes
watch or the LR just changed) and executes each would-be replay eagerly on the static
buffers. On the CPU that must reproduce the normal loop exactly; on CUDA the same
decisions replay real graphs (tests/gpu/test_graphs_packing_cuda.py).
"""

import pytest
import torch
from _train_helpers import TinyLoader, make_data
from torch import nn

from bnlab.errors import UserError
from bnlab.layers import create_norm
from bnlab.probes.activations import ActivationStatsProbe
from bnlab.train import SGD, Adam, MemorySink, Step, TrainRun, Warmup, build_optimizer, train
from bnlab.train.graphs import GraphSteps, StaticStep, check_capturable

CE = nn.functional.cross_entropy


def noisy_model(seed=0, momentum=0.1):
    """BN, noisy BN (own generator), dropout (global RNG): every random stream a step uses."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 8), create_norm("bn", 8, momentum=momentum), nn.ReLU(),
        nn.Linear(8, 8), create_norm("noisy_bn", 8), nn.Dropout(0.2), nn.Linear(8, 3),
    )  # fmt: skip


def run(graph: bool, *, steps=15, schedule=None, probes=(), warmup=2, ckpt=None,
        ckpt_every=0, evaluate=None, model=None, sink=None):  # fmt: skip
    x, y = make_data(48)
    model = model or noisy_model()
    opt = build_optimizer(SGD(0.2, momentum=0.9), model.parameters())
    sink = sink if sink is not None else MemorySink()
    torch.manual_seed(5)
    r = TrainRun(model, TinyLoader(x, y, 8, seed=3), CE, opt, steps=steps, schedule=schedule,
                 probes=probes, sink=sink, log_every=2, evaluate=evaluate, eval_every=5,
                 checkpoint_dir=ckpt, checkpoint_every=ckpt_every)
    if graph:
        r.graph = GraphSteps(model, CE, opt, capture=False, warmup=warmup)
    result = r.run()
    return model, sink, result, r.graph


def assert_same(a, b):
    model_a, sink_a, res_a, _ = a
    model_b, sink_b, res_b, _ = b
    assert res_a == res_b
    assert sink_a.metrics == sink_b.metrics and len(sink_a.metrics) > 0
    assert [(s, n) for s, n, _ in sink_a.arrays] == [(s, n) for s, n, _ in sink_b.arrays]
    for (_, _, u), (_, _, v) in zip(sink_a.arrays, sink_b.arrays, strict=True):
        assert (u == v).all()
    for (k, p), q in zip(model_a.state_dict().items(), model_b.state_dict().values(),
                         strict=True):  # fmt: skip
        assert torch.equal(p, q), k
    noise_a, noise_b = model_a[4].noise_state()["rng"], model_b[4].noise_state()["rng"]
    assert torch.equal(noise_a, noise_b)


def test_capturable_step_equals_the_loop_bit_for_bit_with_a_changing_lr():
    # Step(5): three LR values over 15 updates, so the twin captures three times
    eager = run(False, schedule=Step(5, 0.5))
    graph = run(True, schedule=Step(5, 0.5))
    assert_same(eager, graph)
    # warm-up 0,1; eager where the LR changed (2, 5, 10); captured at 3, 6, 11; the rest
    # replayed: 3, 4, 6-9, 11-14
    assert graph[3].counts == {"warmup": 2, "eager": 3, "captures": 3, "replays": 10}


def test_probe_steps_and_evaluation_run_outside_the_graph(evaluate):
    probe = [ActivationStatsProbe([1], schedule=4)]
    eager = run(False, probes=probe, evaluate=evaluate)
    probe = [ActivationStatsProbe([1], schedule=4)]
    graph = run(True, probes=probe, evaluate=evaluate)
    assert_same(eager, graph)
    counts = graph[3].counts
    # probes due at 0, 4, 8, 12 take the loop's own eager update
    assert counts["warmup"] + counts["eager"] + counts["replays"] == 15 - 4
    assert counts["captures"] == 1
    assert any(n.startswith("act/") for _, n, _ in graph[1].arrays)


def test_a_schedule_that_moves_every_step_stays_eager():
    graph = run(True, schedule=Warmup(20), steps=12)
    assert graph[3].counts == {"warmup": 2, "eager": 10, "captures": 0, "replays": 0}
    assert_same(run(False, schedule=Warmup(20), steps=12), graph)


def test_resume_under_graph_mode_is_bit_identical(tmp_path):
    whole = run(True, steps=14, schedule=Step(6, 0.5))

    class Stop(Exception):
        pass

    def stop_at_9(logits, y):
        stop_at_9.calls += 1
        if stop_at_9.calls == 10:
            raise Stop
        return CE(logits, y)

    stop_at_9.calls = 0
    x, y = make_data(48)
    model = noisy_model()
    opt = build_optimizer(SGD(0.2, momentum=0.9), model.parameters())
    sink = MemorySink()
    torch.manual_seed(5)
    first = TrainRun(model, TinyLoader(x, y, 8, seed=3), stop_at_9, opt, steps=14,
                     schedule=Step(6, 0.5), sink=sink, log_every=2, checkpoint_dir=tmp_path,
                     checkpoint_every=4)
    first.graph = GraphSteps(model, stop_at_9, opt, capture=False, warmup=2)
    with pytest.raises(Stop):
        first.run()
    kept = [r for r in sink.metrics if r[0] < 8]  # the store drops rows >= the checkpoint
    resumed_sink = MemorySink()
    resumed_sink.metrics.extend(kept)
    resumed = run(True, steps=14, schedule=Step(6, 0.5), ckpt=tmp_path, ckpt_every=4,
                  sink=resumed_sink)
    assert resumed[2].resumed_from == 8
    assert resumed_sink.metrics == whole[1].metrics
    for p, q in zip(resumed[0].state_dict().values(), whole[0].state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(p, q)


def test_graphs_are_kept_per_lr_least_recently_used_first():
    model = noisy_model()
    opt = build_optimizer(SGD(0.1), model.parameters())
    steps = GraphSteps(model, CE, opt, capture=False, warmup=0, max_graphs=2)
    batch = make_data(8)
    lrs = [0.1, 0.1, 0.2, 0.2, 0.1, 0.3, 0.3, 0.2, 0.2]
    for lr in lrs:
        opt.param_groups[0]["lr"] = lr
        steps(batch)
    # 0.1 captured, 0.2 captured, 0.1 replayed from its graph, 0.3 captured (evicting
    # 0.2), so 0.2 must be captured again
    assert steps.counts["captures"] == 4
    assert len(steps.graphs) == 2


def test_a_batch_of_another_shape_takes_an_eager_update():
    model = noisy_model()
    opt = build_optimizer(SGD(0.1), model.parameters())
    steps = GraphSteps(model, CE, opt, capture=False, warmup=0)
    x, y = make_data(8)
    steps((x, y))
    steps((x[:5], y[:5]))
    assert steps.counts["eager"] == 2 and steps.static.inputs.shape == (8, 6)


def test_static_step_keeps_its_buffers():
    model = noisy_model()
    opt = build_optimizer(SGD(0.1), model.parameters())
    x, y = make_data(8)
    static = StaticStep(model, CE, opt, (x, y))
    address = static.inputs.data_ptr()
    static.load((x + 1, y))
    loss = static.eager()
    assert static.inputs.data_ptr() == address and torch.equal(static.inputs, x + 1)
    assert loss.ndim == 0 and not loss.requires_grad


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: (noisy_model(momentum=None), SGD(0.1)), "momentum=None"),
        (lambda: (nn.Sequential(nn.Linear(6, 3), NoiseWithoutGenerator()), SGD(0.1)),
         "no noise_generator"),
        (lambda: (noisy_model(), Adam(0.1)), "supports SGD"),
    ],
    ids=["cumulative-bn", "unregistrable-noise", "adam"],
)  # fmt: skip
def test_what_graph_mode_refuses(make, match):
    model, cfg = make()
    with pytest.raises(UserError, match=match):
        check_capturable(model, build_optimizer(cfg, model.parameters()), need_cuda=False)


def test_graph_mode_on_the_cpu_is_one_clear_error(loader):
    model = noisy_model()
    with pytest.raises(UserError, match="needs a CUDA device"):
        train(model, loader, CE, build_optimizer(SGD(0.1), model.parameters()), steps=2,
              compile="graphs")
    with pytest.raises(ValueError, match="compile must be one of none, graphs"):
        train(model, loader, CE, build_optimizer(SGD(0.1), model.parameters()), steps=2,
              compile="jit")


def test_set_noise_state_keeps_the_generator_a_graph_registered():
    layer = create_norm("noisy_bn", 4)
    gen = layer.noise_generator()
    state = layer.noise_state()
    layer(torch.randn(6, 4))
    layer.set_noise_state(state)
    assert layer.noise_generator() is gen
    assert torch.equal(gen.get_state(), state["rng"])


class NoiseWithoutGenerator(nn.Module):
    def forward(self, x):
        return x

    def noise_state(self):
        return {}

    def set_noise_state(self, state):
        pass
