"""Checkpoints: atomic files, keep two, weights_only, and a resume that is bit-identical."""

import json

import numpy as np
import pytest
import torch
from _train_helpers import make_model
from torch import nn

from bnlab.probes.activations import ActivationStatsProbe
from bnlab.train import Adam, MemorySink, Plateau, Warmup, build_optimizer, latest_step, train

CE = nn.functional.cross_entropy
STEPS = 14


class Crash(RuntimeError):
    pass


class CrashingSink(MemorySink):
    """Raises once anything is logged at `at` or later: a process killed mid-run."""

    def __init__(self, at):
        super().__init__()
        self.at = at
        self.rows_at_flush = []

    def log_metrics(self, step, values):
        if step >= self.at:
            raise Crash(step)
        super().log_metrics(step, values)

    def flush(self):
        super().flush()
        self.rows_at_flush.append(list(self.metrics))


def run(loader, evaluate, sink, ckpt_dir, seed=0):
    torch.manual_seed(seed)
    model = make_model(seed)
    torch.manual_seed(1234)  # the dropout stream; a resumed run must restore it, not reseed
    opt = build_optimizer(Adam(0.05, weight_decay=1e-3), model.parameters())
    probe = ActivationStatsProbe([1], schedule=3, bins=5)
    schedule = Warmup(3, then=Plateau("train_loss", gamma=0.5, patience=0))
    result = train(model, loader, CE, opt, steps=STEPS, schedule=schedule, evaluate=evaluate,
                   eval_every=3, probes=[probe], sink=sink, log_every=2,
                   checkpoint_dir=ckpt_dir, checkpoint_every=4)
    return model, result


def by_key(rows):
    return sorted(rows, key=lambda r: (r[0], r[1]))


def test_resume_is_bit_identical(loader, evaluate, tmp_path):
    model_a, result_a = run(loader, evaluate, sink_a := MemorySink(), tmp_path / "a")
    assert result_a.status == "finished" and result_a.resumed_from is None
    assert list((tmp_path / "a").iterdir()) == []  # everything removed at the end

    crash_dir = tmp_path / "b"
    sink_b = CrashingSink(at=9)
    with pytest.raises(Crash):
        run(loader, evaluate, sink_b, crash_dir)
    assert latest_step(crash_dir) == 8
    assert sorted(p.name for p in crash_dir.iterdir()) == [
        "ckpt-000000004.pt", "ckpt-000000008.pt", "latest.json"]
    # flushed before checkpoint 8: every row with step < 8 was in the sink then
    assert by_key(sink_b.rows_at_flush[-1]) == by_key([r for r in sink_a.metrics if r[0] < 8])

    sink_b.drop_from(8)  # what the store does on resume
    sink_b.at = 10**9
    model_c, result_c = run(loader, evaluate, sink_b, crash_dir, seed=99)  # other init
    assert (result_c.status, result_c.resumed_from, result_c.steps_run) == ("finished", 8, 6)
    for p, q in zip(model_a.state_dict().values(), model_c.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    assert by_key(sink_b.metrics) == by_key(sink_a.metrics)
    arrays_a, arrays_c = by_key(sink_a.arrays), by_key(sink_b.arrays)
    assert [(s, n) for s, n, _ in arrays_a] == [(s, n) for s, n, _ in arrays_c]
    assert any(n.endswith("mean_drift") and s == 9 for s, n, _ in arrays_c)  # drift after resume
    for (_, _, u), (_, _, v) in zip(arrays_a, arrays_c, strict=True):
        np.testing.assert_array_equal(u, v)
    assert list(crash_dir.iterdir()) == []


def test_checkpoint_files_load_with_weights_only(loader, evaluate, tmp_path):
    with pytest.raises(Crash):
        run(loader, evaluate, CrashingSink(at=5), tmp_path)
    info = json.loads((tmp_path / "latest.json").read_text())
    payload = torch.load(tmp_path / info["file"], weights_only=True)
    assert payload["step"] == info["step"] == 4
    assert set(payload) >= {"model", "optimizer", "schedule", "rng", "probes", "guard"}
    assert "" not in payload["rng"]["noise"] and "2" in payload["rng"]["noise"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_missing_checkpoint_file_is_a_clear_error(loader, tmp_path):
    (tmp_path / "latest.json").write_text(json.dumps({"step": 4, "file": "ckpt-000000004.pt"}))
    model = make_model()
    with pytest.raises(ValueError, match="missing"):
        train(model, loader, CE, build_optimizer(Adam(0.01), model.parameters()), steps=8,
              checkpoint_dir=tmp_path, checkpoint_every=2)


def test_diverged_run_removes_checkpoints(loader, tmp_path):
    calls = {"n": 0}

    def loss_fn(logits, y):
        calls["n"] += 1
        return CE(logits, y) + (float("nan") if calls["n"] == 7 else 0.0)

    model = make_model()
    result = train(model, loader, loss_fn, build_optimizer(Adam(0.01), model.parameters()),
                   steps=12, log_every=4, checkpoint_dir=tmp_path, checkpoint_every=2)
    assert (result.status, result.first_bad_step) == ("diverged", 6)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_checkpoint_write_is_an_oserror_naming_the_file(tmp_path, monkeypatch):
    """A full disk: one OSError naming the file and the fix, no temporary file left, the
    previous checkpoint and latest.json untouched."""
    import errno
    import os

    from bnlab.train.checkpoint import load_latest, save_checkpoint

    save_checkpoint(tmp_path, 10, {"format": 1, "w": torch.ones(3)})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"cannot write checkpoint .*ckpt-000000020\.pt.*free"):
        save_checkpoint(tmp_path, 20, {"format": 1, "w": torch.zeros(3)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000000010.pt", "latest.json"]
    monkeypatch.undo()
    step, payload = load_latest(tmp_path)
    assert step == 10 and torch.equal(payload["w"], torch.ones(3))


def test_the_sink_meta_goes_into_latest_json(tmp_path, loader):
    """The sweep's sink counts the rows it holds below N; latest.json carries the count."""

    class CountingSink(CrashingSink):
        def checkpoint_meta(self, step):
            return {"stored": {"metrics": sum(s < step for s, _, _ in self.metrics)},
                    "step": -1, "file": "ignored"}  # step and file are the loop's

    sink = CountingSink(at=11)
    model = make_model(0)
    opt = build_optimizer(Adam(lr=1e-2), model.parameters())
    with pytest.raises(Crash):
        train(model, loader, CE, opt, steps=STEPS, sink=sink, log_every=2,
              checkpoint_dir=tmp_path, checkpoint_every=5)
    latest = json.loads((tmp_path / "latest.json").read_text())
    # rows at steps 0, 2, 4, 6, 8 were stored before checkpoint 10
    assert latest == {"stored": {"metrics": 5}, "step": 10, "file": "ckpt-000000010.pt"}
