"""A torch-free fake training loop for the sweep tests (module-level, so workers can import it).

It follows the train-loop contract of docs/internals.md: a checkpoint "at step N" is
written (after a flush) before anything is logged at step N, ``latest.json`` holds its step,
and a resumed run starts at ``ctx.resumed_from``. Control files in the checkpoint
directory make it crash, interrupt or diverge once, at a given step.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CALLS = "calls.log"


def loss_at(seed: int, step: int) -> float:
    return 1.0 / (1 + step) + 0.01 * seed


def control_path(out: Path, key: str, what: str) -> Path:
    return Path(out) / "checkpoints" / key[:16] / what


def _take_control(ckpt: Path, what: str) -> int | None:
    """Read and consume a one-shot control file (so the next attempt goes on)."""
    path = ckpt / what
    if not path.exists():
        return None
    step = int(path.read_text())
    path.unlink()
    return step


def _checkpoint(ctx, step: int) -> None:
    ctx.flush()
    meta = ctx.checkpoint_meta(step)  # as the training loop does: rows stored below `step`
    (ctx.checkpoint_dir / f"ckpt_{step}.bin").write_text(str(step))
    tmp = ctx.checkpoint_dir / "latest.json.tmp"
    tmp.write_text(json.dumps({**meta, "step": step, "file": f"ckpt_{step}.bin"}))
    tmp.replace(ctx.checkpoint_dir / "latest.json")


def fake_train(spec, ctx):
    cfg, ckpt = spec.config, ctx.checkpoint_dir
    steps, every = cfg["steps"], cfg["ckpt_every"]
    start = ctx.resumed_from or 0
    with open(ckpt.parent.parent / CALLS, "a") as f:
        f.write(f"{ctx.key} {start}\n")
    crash, interrupt = _take_control(ckpt, "crash_at"), _take_control(ckpt, "interrupt_at")
    diverge = cfg.get("diverge_at")
    for s in range(start, steps):
        if s % every == 0 and s != start:
            _checkpoint(ctx, s)
        if s == crash:
            raise RuntimeError(f"boom at step {s}")
        if s == interrupt:
            raise KeyboardInterrupt
        if s == diverge:
            ctx.log_metrics(s, {"loss": float("nan")})
            return {"status": "diverged", "first_bad_step": s, "steps_run": s + 1 - start}
        ctx.log_metrics(s, {"loss": loss_at(spec.seed, s)})
        if s % 2 == 0:
            ctx.log_array(s, "act", np.full(3, s + spec.seed, dtype=np.float32))
    ctx.log_metrics(steps, {"test_acc": 0.5 + 0.1 * spec.seed})
    for p in ckpt.iterdir():  # the loop removes its checkpoints when the run finishes
        p.unlink()
    return {"status": "finished", "first_bad_step": None, "steps_run": steps - start}


def bad_status(spec, ctx):
    return {"status": "done", "steps_run": 1}


def calls(out: Path) -> list[tuple[str, int]]:
    path = Path(out) / CALLS
    if not path.exists():
        return []
    return [(k, int(s)) for k, s in (ln.split() for ln in path.read_text().splitlines())]


def raise_for_seed(spec, ctx):
    """Fail with the exception type named by ``spec.config["raise"][seed]``."""
    kind = spec.config["raise"][spec.seed]
    calls_log = ctx.checkpoint_dir.parent.parent / CALLS
    with open(calls_log, "a") as f:
        f.write(f"{ctx.key} 0\n")
    if kind == "ok":
        return {"status": "finished", "first_bad_step": None, "steps_run": 1}
    if (ctx.checkpoint_dir.parent.parent / "fixed").exists():  # fixed outside the config
        return {"status": "finished", "first_bad_step": None, "steps_run": 1}
    from bnlab.data import DataError

    errors = {"os": OSError(28, "No space left on device"), "memory": MemoryError(),
              "data": DataError("mnist.npz is missing; put it in the data dir"),
              "bug": RuntimeError("a bug")}
    raise errors[kind]
