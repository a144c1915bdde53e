"""Run functions and store comparisons for the packed-executor tests (module level).

``run_tiny`` trains a small model that draws from every random stream a run can use: the
global torch RNG (dropout), a noisy-BN layer's own generator, and numpy's and Python's
global RNGs (a probe draws from them), so runs interleaved without their own streams
would not reproduce. ``run_tiny.start`` builds and starts the same run without training
it, as the harness's ``start_spec`` does. Control files in a run's checkpoint folder stop
it once at a step: ``interrupt_at`` (KeyboardInterrupt), ``crash_at`` (RuntimeError),
``kill_at`` (SIGKILL of the whole process).
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bnlab.layers import create_norm
from bnlab.probes.activations import ActivationStatsProbe
from bnlab.probes.base import Probe
from bnlab.results import Store
from bnlab.sweep import RunSpec
from bnlab.train import SGD, TrainRun, build_optimizer, seed_everything

CE = nn.functional.cross_entropy


class Loader:
    """Shuffled batches, a pure function of (seed, epoch)."""

    def __init__(self, x, y, batch_size, seed):
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed

    def __len__(self):
        return len(self.x) // self.batch_size

    def epoch(self, e, start=0):
        perm = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(
            self.seed * 1000 + e))
        for i in range(start, len(self)):
            idx = perm[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]


class Trap(Probe):
    """Draws from numpy's and Python's global RNGs and logs them; obeys the control files."""

    def __init__(self, folder):
        super().__init__(1)
        self.folder = folder

    def on_step(self, ctx):
        ctx.log("trap/numpy", float(np.random.rand()))
        ctx.log("trap/python", random.random())
        for what in ("interrupt_at", "crash_at", "kill_at"):
            path = self.folder / what
            if path.exists() and int(path.read_text()) == ctx.step:
                path.unlink()
                if what == "interrupt_at":
                    raise KeyboardInterrupt
                if what == "crash_at":
                    raise RuntimeError(f"boom at step {ctx.step}")
                os.kill(os.getpid(), signal.SIGKILL)


def start_tiny(spec: RunSpec, ctx):
    cfg = spec.config
    seed_everything(spec.seed, threads=1)
    gen = torch.Generator().manual_seed(99)  # the same data for every run
    y = torch.randint(3, (64,), generator=gen)
    x = torch.randn(64, 6, generator=gen) + y[:, None].float()
    model = nn.Sequential(
        nn.Linear(6, 8), create_norm("bn", 8), nn.ReLU(), nn.Linear(8, 8),
        create_norm("noisy_bn", 8), nn.Dropout(0.2), nn.Linear(8, 3),
    )  # fmt: skip
    opt = build_optimizer(SGD(cfg["lr"], momentum=0.9), model.parameters())

    def evaluate(m):
        return {"test_loss": float(CE(m(x[:32]), y[:32]))}

    probes = [ActivationStatsProbe([1], schedule=3), Trap(ctx.checkpoint_dir)]
    return TrainRun(model, Loader(x, y, 8, spec.seed), CE, opt, steps=cfg["steps"],
                    evaluate=evaluate, eval_every=4, probes=probes, sink=ctx, log_every=2,
                    checkpoint_dir=ctx.checkpoint_dir,
                    checkpoint_every=cfg["ckpt_every"]).start()  # fmt: skip


def run_tiny(spec: RunSpec, ctx):
    return start_tiny(spec, ctx).run()


run_tiny.start = start_tiny


def start_measure(spec: RunSpec, ctx):
    """A run that only measures: done when started (what the harness does for Measure)."""
    ctx.log_metrics(0, {"value": float(spec.config["lr"]) + spec.seed})
    return {"status": "finished", "first_bad_step": None, "steps_run": 0}


def run_measure(spec: RunSpec, ctx):
    return start_measure(spec, ctx)


run_measure.start = start_measure


def specs(recipe="tiny", steps=12, ckpt_every=4):
    return [RunSpec(recipe, {"lr": lr, "steps": steps, "ckpt_every": ckpt_every}, seed=s)
            for lr in (0.1, 0.3) for s in (0, 1)]  # fmt: skip


def dump(out: Path) -> dict:
    """{key: (status, [(step, name, value)], {name: [(step, array)]})} of a store."""
    with Store(out) as store:
        metrics = store.metrics()
        found = {}
        for run in store.runs().itertuples():
            rows = metrics[metrics["run"] == run.id]
            found[run.key] = (
                run.status,
                sorted(zip(rows["step"], rows["name"], rows["value"], strict=True)),
                {n: store.arrays(run.id, n) for n in store.array_names(run.id)},
            )
    return found


def assert_same_store(a: Path, b: Path) -> None:
    got, want = dump(a), dump(b)
    assert sorted(got) == sorted(want)
    for key, (status, rows, arrays) in want.items():
        assert got[key][0] == status, key
        assert got[key][1] == rows, key  # exact floats
        assert sorted(got[key][2]) == sorted(arrays) and arrays, key
        for name, series in arrays.items():
            other = got[key][2][name]
            assert [s for s, _ in other] == [s for s, _ in series]
            for (_, u), (_, v) in zip(other, series, strict=True):
                assert u.dtype == v.dtype and np.array_equal(u, v), (key, name)
