"""The training loop against a bare PyTorch loop; divergence; probes; evaluation."""

import numpy as np
import pytest
import torch
from _train_helpers import make_model
from torch import nn

from bnlab.probes.activations import ActivationStatsProbe
from bnlab.probes.base import Probe
from bnlab.train import SGD, MemorySink, Step, Warmup, build_optimizer, train

CE = nn.functional.cross_entropy


def bare_loop(model, loader, lr, steps):
    """The reference: a plain PyTorch loop, per-step losses in float64."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses, step, epoch = [], 0, 0
    model.train()
    while step < steps:
        for x, y in loader.epoch(epoch):
            if step == steps:
                break
            opt.zero_grad(set_to_none=True)
            loss = CE(model(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
        epoch += 1
    return np.array(losses, dtype=np.float64)


def metric_rows(sink, name):
    return [(s, v) for s, n, v in sink.metrics if n == name]


def test_equals_bare_loop_and_logs_interval_means(loader):
    ref_model = make_model()
    torch.manual_seed(5)  # the dropout stream
    losses = bare_loop(ref_model, loader, 0.3, 15)  # 15 steps cross two epochs of 6 batches
    model, sink = make_model(), MemorySink()
    torch.manual_seed(5)
    result = train(model, loader, CE, build_optimizer(SGD(0.3), model.parameters()), steps=15,
                   log_every=4, sink=sink)
    assert (result.status, result.first_bad_step, result.resumed_from, result.steps_run) == (
        "finished", None, None, 15)
    for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(p, q)
    rows = metric_rows(sink, "train_loss")
    assert [s for s, _ in rows] == [0, 4, 8, 12]
    expected = [losses[s : s + 4].mean() for s in (0, 4, 8, 12)]
    np.testing.assert_allclose([v for _, v in rows], expected, rtol=1e-6)


def test_evaluation_steps_mode_and_restore(loader, evaluate):
    seen = []

    def spy(model):
        seen.append([m.training for m in model.modules()])
        assert not torch.is_grad_enabled()
        return evaluate(model)

    model, sink = make_model(), MemorySink()
    model[4].eval()  # a module the caller set to eval stays so after evaluation
    flags_before = [m.training for m in model.modules()]
    train(model, loader, CE, build_optimizer(SGD(0.1), model.parameters()), steps=10,
          evaluate=spy, eval_every=4, log_every=5, sink=sink)
    assert [s for s, _ in metric_rows(sink, "test_acc")] == [4, 8, 10]
    assert all(not any(flags) for flags in seen)
    flags_before[0] = True  # the loop puts the model in train mode
    assert [m.training for m in model.modules()] == [True] * len(flags_before)


class Recorder(Probe):
    """Records lr, grads present and the parameters the optimizer has not yet moved."""

    def __init__(self, schedule=1):
        super().__init__(schedule)
        self.calls = []

    def on_step(self, ctx):
        first = next(ctx.model.parameters())
        self.calls.append((ctx.step, ctx.lr, first.grad is not None, first.detach().clone()))
        ctx.log("recorder/step", float(ctx.step))
        ctx.log("recorder/array", np.arange(3.0))


def test_probe_sees_schedule_lr_grads_and_pre_update_params(loader):
    model, sink, probe = make_model(), MemorySink(), Recorder(schedule=3)
    after_update = []

    class After(Probe):
        def on_step(self, ctx):
            pass

    opt = build_optimizer(SGD(0.4), model.parameters())
    opt.register_step_post_hook(lambda o, a, k: after_update.append(
        next(model.parameters()).detach().clone()))
    schedule = Warmup(4, then=Step(6, 0.5))
    train(model, loader, CE, opt, steps=10, schedule=schedule, probes=[probe, After()],
          sink=sink, log_every=10)
    assert [c[0] for c in probe.calls] == [0, 3, 6, 9]
    for step, lr, has_grad, params in probe.calls:
        assert lr == pytest.approx(0.4 * min(1.0, (step + 1) / 4) * 0.5 ** (step // 6))
        assert has_grad
        before = after_update[step - 1] if step else None
        if before is not None:
            assert torch.equal(params, before)  # not yet moved by this step's update
        assert not torch.equal(params, after_update[step])
    assert (3, "recorder/step", 3.0) in sink.metrics
    assert [s for s, n, _ in sink.arrays if n == "recorder/array"] == [0, 3, 6, 9]


class Blowup:
    """A loss that returns `value` at call number `at` (0-based), CE otherwise."""

    def __init__(self, at, value=None, scale=None):
        self.at, self.value, self.scale, self.calls = at, value, scale, 0

    def __call__(self, logits, y):
        loss = CE(logits, y)
        i, self.calls = self.calls, self.calls + 1
        if i == self.at:
            loss = loss * self.scale if self.scale is not None else loss + self.value
        return loss


@pytest.mark.parametrize(
    ("loss_fn", "factor", "status", "bad"),
    [
        pytest.param(Blowup(6, value=float("nan")), 100.0, "diverged", 6, id="nan"),
        pytest.param(Blowup(9, value=float("inf")), None, "diverged", 9, id="inf-factor-off"),
        pytest.param(Blowup(5, scale=1e4), 100.0, "diverged", 5, id="explodes"),
        pytest.param(Blowup(5, scale=1e4), None, "finished", None, id="explodes-factor-off"),
        pytest.param(Blowup(5, scale=50.0), 100.0, "finished", None, id="below-factor"),
    ],
)
def test_divergence(loader, loss_fn, factor, status, bad):
    model, sink = make_model(), MemorySink()
    result = train(model, loader, loss_fn, build_optimizer(SGD(0.1), model.parameters()),
                   steps=16, log_every=4, divergence_factor=factor, sink=sink)
    assert (result.status, result.first_bad_step) == (status, bad)
    if bad is not None:
        end = (bad // 4 + 1) * 4  # stops at the end of the log interval holding the bad step
        assert result.steps_run == end
        assert all(np.isfinite(v) for _, _, v in sink.metrics)
        assert max(s for s, _, _ in sink.metrics) < end


def test_divergence_checked_before_evaluation(loader, evaluate):
    calls = []
    model = make_model()
    result = train(model, loader, Blowup(2, value=float("nan")),
                   build_optimizer(SGD(0.1), model.parameters()), steps=20, log_every=10,
                   evaluate=lambda m: calls.append(1) or evaluate(m), eval_every=5)
    assert (result.status, result.first_bad_step, result.steps_run) == ("diverged", 2, 5)
    assert calls == []


def run_metrics(loader, evaluate, probes):
    torch.manual_seed(0)
    model, sink = make_model(), MemorySink()
    train(model, loader, CE, build_optimizer(SGD(0.5, momentum=0.9), model.parameters()),
          steps=12, log_every=3, evaluate=evaluate, eval_every=4, probes=probes, sink=sink)
    return model, sink


def test_probes_never_change_training(loader, evaluate):
    fixed = loader.x[:16], loader.y[:16]
    probes = [ActivationStatsProbe([1], schedule=2), Recorder(schedule=1),
              ActivationStatsProbe([1], batch=fixed, where="post", bn_mode="eval", schedule=5)]
    model_a, sink_a = run_metrics(loader, evaluate, [])
    model_b, sink_b = run_metrics(loader, evaluate, probes)
    training = [r for r in sink_b.metrics if not r[1].startswith("recorder/")]
    assert training == sink_a.metrics  # bit-identical values, same steps and order
    assert len(sink_b.arrays) > 0
    for p, q in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"log_every": 0}, "log_every"),
        ({"eval_every": -1}, "eval_every"),
        ({"checkpoint_every": 5}, "checkpoint_dir"),
        ({"divergence_factor": 1.0}, "divergence_factor"),
    ],
    ids=["no-steps", "log-every-0", "neg-eval", "ckpt-without-dir", "factor-1"],
)
def test_bad_options(loader, kwargs, match):
    model = make_model()
    options = {"steps": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        train(model, loader, CE, build_optimizer(SGD(0.1), model.parameters()), **options)


def test_progress_is_quiet_off_terminal(loader, capsys):
    model = make_model()
    train(model, loader, CE, build_optimizer(SGD(0.1), model.parameters()), steps=6,
          progress=True, log_every=2)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
