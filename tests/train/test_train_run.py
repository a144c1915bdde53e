"""TrainRun: the steppable run that train() drives and the packed executor interleaves."""

import pytest
import torch
from _train_helpers import make_model
from torch import nn

from bnlab.train import SGD, MemorySink, Step, TrainRun, build_optimizer, train

CE = nn.functional.cross_entropy


def build(loader, evaluate, sink, **kw):
    torch.manual_seed(0)
    model = make_model()
    opt = build_optimizer(SGD(0.3, momentum=0.9), model.parameters())
    torch.manual_seed(5)
    return model, dict(model=model, loader=loader, loss_fn=CE, optimizer=opt, steps=13,
                       schedule=Step(5, 0.5), evaluate=evaluate, eval_every=4, log_every=3,
                       sink=sink, **kw)  # fmt: skip


def test_stepping_by_hand_equals_train(loader, evaluate):
    sink_a = MemorySink()
    model_a, kw = build(loader, evaluate, sink_a)
    expected = train(**kw)
    sink = MemorySink()
    model_b, kw = build(loader, evaluate, sink)
    kw.pop("model")
    run = TrainRun(model_b, **kw).start()
    calls = 0
    while run.advance():
        calls += 1
        assert run.step == calls and not run.done
    assert calls == 12 and run.done and not run.advance()
    assert run.finish() == expected
    assert sink.metrics == sink_a.metrics and len(sink.metrics) > 0
    for p, q in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    assert run.device == torch.device("cpu")


def test_a_diverged_run_ends_at_its_log_interval(loader):
    def blowup(logits, y):
        blowup.calls += 1
        return CE(logits, y) + (float("nan") if blowup.calls == 5 else 0.0)

    blowup.calls = 0
    model = make_model()
    run = TrainRun(model, loader, blowup, build_optimizer(SGD(0.1), model.parameters()),
                   steps=20, log_every=3).start()
    advances = 1
    while run.advance():
        advances += 1
    assert advances == 6  # the interval holding step 4 ends after update 5
    result = run.finish()
    assert (result.status, result.first_bad_step, result.steps_run) == ("diverged", 4, 6)


def test_out_of_order_calls_are_errors(loader):
    model = make_model()
    run = TrainRun(model, loader, CE, build_optimizer(SGD(0.1), model.parameters()), steps=3)
    with pytest.raises(RuntimeError, match="before start"):
        run.advance()
    run.start()
    with pytest.raises(RuntimeError, match="before the run ended"):
        run.finish()


def test_resumed_at_the_end_only_evaluates(loader, evaluate, tmp_path, monkeypatch):
    # a checkpoint at the run's last step (a run whose `steps` shrank): nothing to train
    model, kw = build(loader, evaluate, MemorySink(), checkpoint_dir=tmp_path,
                      checkpoint_every=4)
    kw["steps"] = 9
    train(**kw)  # writes checkpoints at 4 and 8, removes them at the end: write one back
    kw.pop("model")
    run = TrainRun(model, **kw).start()
    run._loop.checkpoint(9)
    sink = MemorySink()
    kw["sink"] = sink
    again = TrainRun(model, **kw).start()
    assert again.resumed_from == 9 and not again.advance()
    result = again.finish()
    assert (result.status, result.steps_run) == ("finished", 0)
    assert {s for s, _, _ in sink.metrics} == {9}
