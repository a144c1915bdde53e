"""The packed executor: several runs of one sweep interleaved step by step in one process.

Why: separate processes time-slice a GPU (issue 15, NVIDIA H200: 1 run 194 steps/s, 4
processes 221 in total). Inside one process the runs' kernels can overlap: each run
issues its step on its own CUDA stream, round-robin, and with ``--compile graphs`` a step
is one graph launch, so the host keeps every stream fed.

Each run stays what it would be alone (same seed, same batches, same random numbers):

* a run is built and started by ``run_fn.start(spec, ctx)`` (the harness's
  :func:`~bnlab.experiments.harness.start_spec`), which seeds the global RNGs and returns
  a steppable :class:`~bnlab.train.TrainRun`; everything it builds (model, loader,
  optimizer, probes, noise generators) is its own;
* the global RNG streams (torch CPU, numpy, Python; the default CUDA generator's state
  object, swapped by pointer so a captured graph keeps drawing from the run's own state)
  and the thread count are the run's :class:`RunRNG`, swapped in around each
  :meth:`~bnlab.train.TrainRun.advance`;
* each run holds its run lock while it is under way, and writes through its own
  :class:`~bnlab.sweep.RunContext` and checkpoint folder, as with the serial executor
  (verified resumes included): a finished run is stored ``finished`` when it ends, an
  interrupted sweep (Ctrl-C) hands every active run back ``pending``, a killed one leaves
  them ``running``; either way a re-run resumes them from their checkpoints.

On a CPU packing gives no speed-up (the runs share the cores), but it is the same code.

Example:
    >>> execute(specs, "out", run_spec, executor="packed", workers=4)  # doctest: +SKIP
"""

from __future__ import annotations

import random
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from bnlab.errors import UserError
from bnlab.results import Store, StoreError
from bnlab.sweep.context import RunContext
from bnlab.sweep.execute import (
    _RUN_LOCK_WAIT_S,
    RunRecord,
    _fail,
    _finish,
    _hand_back,
    _Job,
    _prune,
    _resume_point,
    failure_kind,
)
from bnlab.sweep.keys import RunSpec
from bnlab.sweep.lock import RunBusyError, run_lock

__all__ = ["Lane", "RunRNG", "Steppable", "run_packed"]


class Steppable(Protocol):
    """What the packed executor drives (:class:`bnlab.train.TrainRun` is one)."""

    device: torch.device

    def advance(self) -> bool:
        """One loop iteration; whether the run goes on."""
        ...

    def finish(self) -> Any:
        """The outcome (``status``, ``first_bad_step``, ``steps_run``) once ended."""
        ...

    def close(self) -> None:
        """Release what an abandoned run holds (its progress bar)."""
        ...


StartFn = Callable[[RunSpec, RunContext], Any]


class RunRNG:
    """One run's global random streams and thread count, swapped in while it steps.

    Taken right after the run started (seeded, built, resumed), so its streams continue
    exactly where a run alone would be. On CUDA the run gets its own copy of the default
    generator's state object, installed by pointer (``graphsafe_set_state``): a CUDA graph
    captured during the run registers that object and advances it on every replay.
    """

    def __init__(self, device: torch.device) -> None:
        self._save()
        self.threads = torch.get_num_threads()
        self.cuda_gen: torch.Generator | None = None
        self.cuda_state: torch.Generator | None = None
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            self.cuda_gen = torch.cuda.default_generators[index]
            self.cuda_state = self.cuda_gen.clone_state()

    def _save(self) -> None:
        self.cpu = torch.get_rng_state()
        self.numpy = np.random.get_state()
        self.python = random.getstate()

    @contextmanager
    def active(self) -> Iterator[None]:
        """Install this run's streams for the block; save where they ended."""
        torch.set_rng_state(self.cpu)
        np.random.set_state(self.numpy)
        random.setstate(self.python)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        previous = None
        if self.cuda_gen is not None and self.cuda_state is not None:
            previous = self.cuda_gen.graphsafe_get_state()
            self.cuda_gen.graphsafe_set_state(self.cuda_state)
        try:
            yield
        finally:
            self._save()
            if self.cuda_gen is not None and previous is not None:
                self.cuda_gen.graphsafe_set_state(previous)


class Lane:
    """One run in a pack: the steppable run, its :class:`RunRNG` and its CUDA stream.

    Args:
        run: a started run.
    """

    def __init__(self, run: Steppable) -> None:
        self.run = run
        device = run.device
        self.rng = RunRNG(device)
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        if self.stream is not None:  # the run was built on the default stream
            self.stream.wait_stream(torch.cuda.current_stream(device))

    def advance(self) -> bool:
        """One iteration of the run with its streams installed; whether it goes on."""
        stream = nullcontext() if self.stream is None else torch.cuda.stream(self.stream)
        with self.rng.active(), stream:
            return self.run.advance()

    def join(self) -> None:
        """Make the default stream wait for this run's work (before reading its results)."""
        if self.stream is not None:
            torch.cuda.current_stream(self.stream.device).wait_stream(self.stream)


def _starter(run_fn: Callable[..., Any]) -> StartFn:
    start = getattr(run_fn, "start", None)
    if not callable(start):
        raise UserError(f"the packed executor needs a run_fn with a start(spec, ctx) that "
                        f"returns a steppable run (bnlab's run_spec has one); {run_fn!r} "
                        "has none: use --executor serial or process")
    return start


@dataclass
class _Active:
    """A packed run that is under way: what the store needs to end it, and its run lock."""

    spec: RunSpec
    run_id: int
    ctx: RunContext
    lane: Lane
    lock: ExitStack
    note: str | None = field(default=None)


def run_packed(store: Store, job: _Job, todo: list[tuple[RunSpec, int]], bar: Any,
               pack: int) -> list[RunRecord]:  # fmt: skip
    """Run ``todo`` at most ``pack`` at a time, interleaved step by step; their records.

    The packed executor of :func:`bnlab.sweep.execute` (``workers`` is the pack size). A
    run that raises is stored ``failed`` and the others go on; a run another process holds
    is ``lost``; Ctrl-C hands every active run back ``pending`` and re-raises; a failure of
    the store stops the sweep with every active run resumable.
    """
    start = _starter(job.run_fn)
    queue: deque[tuple[RunSpec, int]] = deque(todo)
    active: list[_Active] = []
    records: list[RunRecord] = []
    try:
        while queue or active:
            while queue and len(active) < pack:
                spec, run_id = queue.popleft()
                opened = _open(store, job, spec, run_id, start)
                if isinstance(opened, _Active):
                    active.append(opened)
                else:
                    records.append(opened)
                    bar.update(1)
            for run in list(active):
                record = _advance(store, run)
                if record is not None:
                    active.remove(run)
                    records.append(record)
                    bar.set_postfix_str(f"last {run.spec.key[:8]} ({record.status})")
                    bar.update(1)
    except BaseException:
        for run in active:
            run.lane.run.close()
            _hand_back(store, run.ctx, run.run_id)
            run.lock.close()
        raise
    return records


def _open(store: Store, job: _Job, spec: RunSpec, run_id: int,
          start: StartFn) -> _Active | RunRecord:  # fmt: skip
    """Lock, start (or resume) one run: an :class:`_Active`, or the record of its end."""
    lock = ExitStack()
    try:
        lock.enter_context(run_lock(job.out_dir, spec.key, timeout=_RUN_LOCK_WAIT_S))
    except RunBusyError as exc:
        return RunRecord(spec.key, "lost", 0, str(exc))
    with ExitStack() as unlock_unless_active:
        unlock_unless_active.push(lock)
        ckpt = job.out_dir / "checkpoints" / spec.key[:16]
        try:
            resumed_from, note = _resume_point(store, run_id, ckpt)
        except ValueError as exc:
            _fail(store, run_id, str(exc), "input")
            return RunRecord(spec.key, "failed", 0, str(exc))
        prov = job.prov if note is None else {**job.prov, "restarted": note}
        store.start_run(run_id, resumed_from=resumed_from, provenance=prov)
        ctx = RunContext(store, run_id, spec.key, ckpt, resumed_from)
        try:
            started = start(spec, ctx)
            if not callable(getattr(started, "advance", None)):  # a measure-only run
                ctx.flush()
        except KeyboardInterrupt:
            _hand_back(store, ctx, run_id)
            raise
        except StoreError:
            raise
        except Exception as exc:
            return _failed(store, spec.key, run_id, ctx, exc, note)
        if not callable(getattr(started, "advance", None)):
            record = _finish(store, run_id, spec.key, started)
            _prune(ckpt)
            return RunRecord(record.key, record.status, record.steps_run, record.error, note)
        unlock_unless_active.pop_all()  # the lock now belongs to the active run
        return _Active(spec, run_id, ctx, Lane(started), lock, note)


def _advance(store: Store, run: _Active) -> RunRecord | None:
    """One iteration of ``run``; its record once it ended (finished, diverged, failed)."""
    try:
        if run.lane.advance():
            return None
        run.lane.join()
        outcome = run.lane.run.finish()
        run.ctx.flush()
    except (KeyboardInterrupt, StoreError):
        raise
    except Exception as exc:
        run.lane.run.close()
        with run.lock:
            return _failed(store, run.spec.key, run.run_id, run.ctx, exc, run.note)
    with run.lock:
        record = _finish(store, run.run_id, run.spec.key, outcome)
        _prune(run.ctx.checkpoint_dir)
    return RunRecord(record.key, record.status, record.steps_run, record.error, run.note)


def _failed(store: Store, key: str, run_id: int, ctx: RunContext, exc: Exception,
            note: str | None) -> RunRecord:  # fmt: skip
    error = traceback.format_exc()
    ctx.flush()
    _fail(store, run_id, error, failure_kind(exc))
    _prune(ctx.checkpoint_dir)
    return RunRecord(key, "failed", 0, error, note)
