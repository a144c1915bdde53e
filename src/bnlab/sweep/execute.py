"""Run a list of :class:`RunSpec` against the store of one output directory.

Re-running a sweep is always safe (DESIGN.md, "Contracts"):

* ``finished`` and ``diverged`` runs are skipped: the same experiment never runs twice;
* ``pending`` and ``running`` runs (never started, or interrupted) are started again. When
  ``<checkpoint_dir>/latest.json`` exists the run resumes from its step N: the store drops
  the run's rows with ``step >= N`` in the transaction that marks it ``running``, since
  the loop re-measures them (docs/internals.md, "Steps"). ``latest.json`` also says how
  many rows the store held below N when the checkpoint was written; if the store now
  holds fewer (the database or its WAL was lost), the run restarts from scratch and the
  summary says why;
* ``failed`` runs are skipped unless ``retry_failed=True`` — except when the failure was
  the input's or the environment's (a missing data file, a full disk, out of memory),
  which are fixed outside the run's key: those are retried by default
  (:func:`failure_kind`);
* a run that raises is stored ``failed`` with its traceback and the sweep goes on;
  ``KeyboardInterrupt`` hands the run back as ``pending`` and re-raises;
* a failure of the store itself (:class:`~bnlab.results.StoreError`: a full disk, a
  deleted database) stops the sweep; the run stays resumable and is never reported
  ``finished``.

Each run is trained under its own lock (:func:`~bnlab.sweep.lock.run_lock`), so a run is
never trained by two processes at once, whatever was left running by a killed sweep.

Executors (one function each, same signature, chosen from :data:`_EXECUTORS`): ``serial``
runs in this process; ``process`` runs on a pool of spawned worker processes, each opening
its own :class:`~bnlab.results.Store` (SQLite in WAL mode lets them write concurrently);
``packed`` interleaves up to ``workers`` runs step by step in this process, to share one
GPU (:mod:`bnlab.sweep.packed`). ``ray`` runs each run as a Ray task whose store calls the
driver executes (:mod:`bnlab.sweep.ray_executor`).
Pool workers die with the sweep (a parent-death signal on Linux, and a watchdog thread
everywhere), ignore the terminal's Ctrl-C and are stopped by the sweep instead, and are
never handed more runs than they can start, so nothing queued starts after Ctrl-C.
"""

from __future__ import annotations

import ctypes
import functools
import json
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bnlab.errors import UserError
from bnlab.names import EXECUTORS, MAX_WORKERS
from bnlab.results import STATUSES, Store, StoreError, provenance
from bnlab.sweep.context import RunContext
from bnlab.sweep.keys import RunSpec
from bnlab.sweep.lock import RunBusyError, dir_lock, run_lock

__all__ = [
    "EXECUTORS",
    "MAX_WORKERS",
    "RunFn",
    "RunRecord",
    "SweepSummary",
    "execute",
    "failure_kind",
    "latest_step",
]

RunFn = Callable[[RunSpec, RunContext], Any]
_OUTCOMES = ("finished", "diverged")
#: Seconds the stopped workers of an interrupted sweep get to hand their runs back.
_STOP_GRACE_S = 10.0
#: Seconds between a worker's checks that its sweep is still alive.
_WATCHDOG_S = 0.5
#: Failure kinds (see :func:`failure_kind`) that a plain re-run retries.
_RETRIED = ("input", "environment")
#: Seconds a run waits for its run lock (a worker of a killed sweep dies within ~1 s).
_RUN_LOCK_WAIT_S = 5.0


@dataclass(frozen=True)
class RunRecord:
    """How one executed run ended (what the summary counts).

    ``status`` is a store status, or ``"lost"`` for a run that did not end in this call
    (its worker died, or another process held it); a lost run stays resumable.
    """

    key: str
    status: str
    steps_run: int = 0
    error: str | None = None
    note: str | None = None


@dataclass
class SweepSummary:
    """The result of :func:`execute`.

    Attributes:
        total: distinct runs in the sweep.
        skipped: runs not executed (already finished or diverged; failed without
            ``retry_failed`` when the failure was not the input's or environment's).
        executed: runs started by this call.
        counts: final status -> number of the sweep's runs (every status present).
        steps_run: optimizer steps executed by this call, as the runs reported them.
        failures: ``(key, last line of the error)`` of runs that failed in this call.
        lost: runs that did not end in this call (see :class:`RunRecord`).
        not_done: ``(key, why)`` of the lost runs.
        notes: ``(key, note)``: runs restarted from scratch, and why.
    """

    total: int = 0
    skipped: int = 0
    executed: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    steps_run: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    lost: int = 0
    not_done: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every run of the sweep ended (finished or diverged) without failing."""
        return not self.failures and not self.lost

    def __str__(self) -> str:
        states = ", ".join(f"{n} {s}" for s, n in self.counts.items() if n)
        return (f"{self.total} runs ({states or 'none'}): {self.executed} executed, "
                f"{self.skipped} skipped, {self.steps_run} steps")


def failure_kind(exc: BaseException) -> str:
    """Why a run failed, which decides whether a plain re-run retries it.

    ``"input"``: a :class:`~bnlab.errors.UserError` (a missing or corrupt data file, a
    refused checkpoint): fixed outside the run's config, so retried. ``"environment"``: the
    machine (``OSError``, ``MemoryError``, an out-of-memory error of torch, a store
    failure): retried. ``"error"``: anything else, which the same run would raise again;
    retried only with ``retry_failed``.
    """
    if isinstance(exc, UserError):
        return "input"
    if isinstance(exc, OSError | MemoryError | StoreError):
        return "environment"
    if type(exc).__name__ == "OutOfMemoryError":  # torch's, without importing torch
        return "environment"
    return "error"


def _read_latest(checkpoint_dir: Path) -> dict[str, Any] | None:
    """``latest.json`` as a dict with an int ``step >= 0``, or ``None`` when there is none.

    Raises:
        ValueError: if the file exists but is unreadable or holds no such step.
    """
    path = Path(checkpoint_dir) / "latest.json"
    if not path.is_file():
        return None
    fix = f"delete {path.parent} to restart the run from scratch"
    try:
        info = json.loads(path.read_text())
        step = info["step"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read the checkpoint step from {path} "
                         f"({type(exc).__name__}); {fix}") from exc
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"{path} holds step {str(step)[:40]!r}, not an int >= 0; {fix}")
    return info


def latest_step(checkpoint_dir: Path) -> int | None:
    """The step of ``<checkpoint_dir>/latest.json``, or ``None`` when there is none.

    Raises:
        ValueError: if the file exists but holds no step ``>= 0``.
    """
    info = _read_latest(checkpoint_dir)
    return None if info is None else int(info["step"])


def _resume_point(store: Store, run_id: int, ckpt: Path) -> tuple[int | None, str | None]:
    """The step to resume from, and why the run restarts from scratch instead (or None).

    A checkpoint that recorded how many rows the store held below its step is trusted
    only if the store still holds at least that many; otherwise its ``latest.json`` is
    removed so the loop starts afresh (a later row logged below N may add rows, never
    remove them, hence "at least").
    """
    info = _read_latest(ckpt)
    if info is None:
        return None, None
    step, stored = int(info["step"]), info.get("stored")
    if not isinstance(stored, Mapping):
        return step, None
    have = store.row_counts(run_id, step)
    want = (int(stored.get("metrics", 0)), int(stored.get("arrays", 0)))
    if have.metrics >= want[0] and have.arrays >= want[1]:
        return step, None
    (ckpt / "latest.json").unlink(missing_ok=True)
    return None, (f"restarted from scratch: its checkpoint at step {step} counted "
                  f"{want[0]} metric and {want[1]} array rows stored before it, the store "
                  f"holds {have.metrics} and {have.arrays} (the database was lost or replaced)")


def _field(outcome: Any, name: str) -> Any:
    if isinstance(outcome, Mapping):
        return outcome.get(name)
    return getattr(outcome, name, None)


def _last_line(text: str | None) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def _finish(store: Store, run_id: int, key: str, outcome: Any) -> RunRecord:
    """Store the outcome ``run_fn`` returned: ``finished`` or ``diverged`` (+ its step)."""
    status, steps = _field(outcome, "status"), int(_field(outcome, "steps_run") or 0)
    if status not in _OUTCOMES:
        error = (f"run_fn returned status {status!r}; expected one of {', '.join(_OUTCOMES)} "
                 "(an object or dict with status, first_bad_step, steps_run)")
        store.finish_run(run_id, "failed", error=error)
        return RunRecord(key, "failed", steps, error)
    error = None
    if status == "diverged":
        bad = _field(outcome, "first_bad_step")
        reason = _field(outcome, "error") or _field(outcome, "reason")
        if bad is not None:
            store.log_metrics(run_id, [(int(bad), "diverged_step", float(bad))])
        where = f"at step {bad}" if bad is not None else "(first bad step unknown)"
        error = _last_line(reason) or f"diverged {where}: loss non-finite or exploded"
    store.check_intact(run_id)  # never report a run finished into a database that is gone
    store.finish_run(run_id, status, error=error)
    return RunRecord(key, status, steps, error)


@dataclass(frozen=True)
class _Job:
    """What every run of one sweep shares (sent to pool workers and Ray tasks as it is)."""

    out_dir: Path
    run_fn: RunFn
    prov: dict
    checkpoint_root: Path | None = None  # default <out_dir>/checkpoints
    options: Mapping[str, Any] | None = None  # executor options (ray)

    def checkpoint_dir(self, key: str) -> Path:
        """The checkpoint folder of run ``key``."""
        return (self.checkpoint_root or self.out_dir / "checkpoints") / key[:16]


def _run_one(store: Store, job: _Job, spec: RunSpec, run_id: int,
             progress: bool = False) -> RunRecord:
    """Train one run under its run lock; a run held by another process is ``lost``."""
    try:
        with run_lock(job.out_dir, spec.key, timeout=_RUN_LOCK_WAIT_S,
                      root=job.checkpoint_root):
            return _attempt(store, job, spec, run_id, progress)
    except RunBusyError as exc:
        return RunRecord(spec.key, "lost", 0, str(exc))


def _attempt(store: Store, job: _Job, spec: RunSpec, run_id: int, progress: bool) -> RunRecord:
    """Start (or resume) one run, call ``run_fn`` and store how it ended."""
    key, ckpt = spec.key, job.checkpoint_dir(spec.key)
    try:
        resumed_from, note = _resume_point(store, run_id, ckpt)
    except ValueError as exc:
        _fail(store, run_id, str(exc), "input")
        return RunRecord(key, "failed", 0, str(exc))
    prov = job.prov if note is None else {**job.prov, "restarted": note}
    store.start_run(run_id, resumed_from=resumed_from, provenance=prov)
    ctx = RunContext(store, run_id, key, ckpt, resumed_from)
    ctx.progress = progress
    try:
        outcome = job.run_fn(spec, ctx)
        ctx.flush()
    except KeyboardInterrupt:
        _hand_back(store, ctx, run_id)
        raise
    except StoreError:
        raise  # the store itself failed: the sweep stops, the run stays resumable
    except Exception as exc:
        error = traceback.format_exc()
        ctx.flush()
        _fail(store, run_id, error, failure_kind(exc))
        _prune(ckpt)
        return RunRecord(key, "failed", 0, error, note)
    record = _finish(store, run_id, key, outcome)
    _prune(ckpt)
    return RunRecord(record.key, record.status, record.steps_run, record.error, note)


def _fail(store: Store, run_id: int, error: str, kind: str) -> None:
    store.add_provenance(run_id, failure=kind)
    store.finish_run(run_id, "failed", error=error)


def _hand_back(store: Store, ctx: RunContext, run_id: int) -> None:
    """Mark an interrupted run ``pending`` (its rows past the checkpoint are re-measured)."""
    try:
        ctx.flush()
        store.finish_run(run_id, "pending", error="interrupted (KeyboardInterrupt); re-run")
    except StoreError:
        pass  # it stays "running", which a re-run resumes just the same


def _prune(ckpt: Path) -> None:
    """Remove a run's checkpoint folder once it is empty."""
    try:
        ckpt.rmdir()  # only succeeds on an empty folder
    except OSError:
        pass


def _prune_root(out_dir: Path) -> None:
    """Remove ``<out>/checkpoints`` once it is empty (the sweep's last step)."""
    try:
        (out_dir / "checkpoints").rmdir()
    except OSError:
        pass


def _plan(
    store: Store, specs: Iterable[RunSpec], retry_failed: bool
) -> tuple[list[tuple[RunSpec, int]], dict[str, str]]:
    """Register every distinct run; return those to execute and the status of the rest."""
    todo: list[tuple[RunSpec, int]] = []
    skipped: dict[str, str] = {}
    seen: set[str] = set()
    for spec in specs:
        key = spec.key
        if key in seen:
            continue
        seen.add(key)
        run_id = store.register_run(key, spec.recipe, {**spec.config, "seed": spec.seed}, spec.seed)
        run = store.run(run_id) or {}
        status = run.get("status")
        retry = retry_failed or (run.get("provenance") or {}).get("failure") in _RETRIED
        if status in _OUTCOMES or (status == "failed" and not retry):
            skipped[key] = str(status)
        else:
            todo.append((spec, run_id))
    return todo, skipped


def _progress_bar(total: int, initial: int, progress: bool | None) -> tqdm:
    show = sys.stderr.isatty() if progress is None else bool(progress)
    return tqdm(total=total, initial=initial, desc="sweep", unit="run", disable=not show,
                file=sys.stderr, dynamic_ncols=True)


# -- executors: (store, job, todo, bar, workers) -> records ------------------------------------


def _serial(store: Store, job: _Job, todo: list, bar: tqdm, workers: int) -> list[RunRecord]:
    """Run every run in this process, one after the other."""
    records = []
    for spec, run_id in todo:
        bar.set_postfix_str(f"{spec.recipe} {spec.key[:8]} seed={spec.seed}")
        # A per-run bar under the sweep bar; worker processes never draw one.
        records.append(_run_one(store, job, spec, run_id, not bar.disable))
        bar.update(1)
    return records


def _process(store: Store, job: _Job, todo: list, bar: tqdm, workers: int) -> list[RunRecord]:
    """Run on a pool of spawned workers, never handing out more runs than there are workers.

    ProcessPoolExecutor queues submitted calls ahead of the workers, and a worker takes
    the next call once its run ended, even an interrupted one; so a run is submitted only
    when a worker is free. On Ctrl-C (or any error) the workers are told to stop
    (:func:`_stop_workers`) and the exception goes on.
    """
    n = min(workers, len(todo))
    pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(),))
    # spawn, not fork: fork would copy the driver's SQLite handle
    queue, running, records = deque(todo), {}, []
    try:
        while queue or running:
            while queue and len(running) < n:
                spec, run_id = queue.popleft()
                running[pool.submit(_run_in_worker, job, spec, run_id)] = (spec, run_id)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                spec, run_id = running.pop(fut)
                record = _collect(store, fut, spec, run_id)
                records.append(record)
                if record.status == "lost" and isinstance(fut.exception(), BrokenProcessPool):
                    records += [RunRecord(s.key, "lost", 0, "not started: a worker died")
                                for s, _ in queue]
                    queue.clear()
                bar.set_postfix_str(f"last {spec.key[:8]} ({record.status})")
                bar.update(1)
    except BaseException:
        _stop_workers(pool, running)
        raise
    pool.shutdown(wait=True)
    return records


def _packed(store: Store, job: _Job, todo: list, bar: tqdm, workers: int) -> list[RunRecord]:
    """Interleave up to ``workers`` runs step by step in this process (bnlab.sweep.packed)."""
    from bnlab.sweep.packed import run_packed  # torch only for this executor

    return run_packed(store, job, todo, bar, workers)


def _ray(store: Store, job: _Job, todo: list, bar: tqdm, workers: int) -> list[RunRecord]:
    """Run each run as a Ray task (``workers`` unused: Ray places them by resources)."""
    from bnlab.sweep import ray_executor

    records: list[RunRecord] = []

    def done(spec: RunSpec, run_id: int, record: RunRecord) -> None:
        records.append(record)
        bar.set_postfix_str(f"last {spec.key[:8]} ({record.status})")
        bar.update(1)

    lost = ray_executor.run_on_ray(store, todo, functools.partial(_run_on_ray_worker, job),
                                   done, ray_executor.options_from(job.options))
    return records + [RunRecord(spec.key, "lost", 0, why) for spec, _, why in lost]


def _run_on_ray_worker(job: _Job, store: Store, spec: RunSpec, run_id: int) -> RunRecord:
    """The task of one Ray run: :func:`_run_one` against the driver's store (a proxy)."""
    return _run_one(store, job, spec, run_id)


_EXECUTORS: dict[str, Callable[[Store, _Job, list, tqdm, int], list[RunRecord]]] = {
    "serial": _serial,
    "process": _process,
    "packed": _packed,
    "ray": _ray,
}


def _collect(store: Store, fut: Future, spec: RunSpec, run_id: int) -> RunRecord:
    """A worker's record; a task that could not run is stored failed, a dead worker lost."""
    try:
        return fut.result()
    except BrokenProcessPool:
        # the worker died (killed, out of memory): the run stays resumable
        return RunRecord(spec.key, "lost", 0, "its worker process died")
    except KeyboardInterrupt:  # someone sent the worker a SIGTERM: the run was handed back
        return RunRecord(spec.key, "lost", 0, "its worker process was stopped")
    except StoreError:
        raise
    except Exception as exc:
        error = traceback.format_exc()
        _fail(store, run_id, error, failure_kind(exc))
        return RunRecord(spec.key, "failed", 0, error)


def _stop_workers(pool: ProcessPoolExecutor, running: Mapping[Future, Any]) -> None:
    """Ask every worker to hand its run back (SIGTERM) and to exit; kill it after a grace."""
    procs = list(getattr(pool, "_processes", {}).values())  # no public accessor
    deadline = time.monotonic() + _STOP_GRACE_S
    for proc in procs:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGTERM)
    try:
        wait(running, timeout=_STOP_GRACE_S)
        pool.shutdown(wait=False, cancel_futures=True)  # idle workers exit on its sentinel
        for proc in procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        # every worker has ended now, so this is short; it lets the pool release its
        # queues (otherwise multiprocessing warns about leaked semaphores at exit)
        pool.shutdown(wait=True, cancel_futures=True)


# -- inside a worker process -------------------------------------------------------------------

_IN_RUN = threading.Event()


def _worker_init(parent: int) -> None:
    """Make a pool worker die with its sweep and stop only when the sweep says so."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C is the sweep's
    signal.signal(signal.SIGTERM, _on_sigterm)
    _die_with_parent(parent)


def _on_sigterm(signum: int, frame: Any) -> None:
    """Hand the run back as pending, like a Ctrl-C; an idle worker waits for shutdown."""
    if _IN_RUN.is_set():
        raise KeyboardInterrupt


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when ``parent`` dies: prctl on Linux, a watchdog everywhere."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # the watchdog below still works
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watchdog() -> None:
        while os.getppid() == parent:
            threading.Event().wait(_WATCHDOG_S)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watchdog, name="bnlab-watchdog", daemon=True).start()


def _run_in_worker(job: _Job, spec: RunSpec, run_id: int) -> RunRecord:
    """The task of one process-pool worker: its own store connection, one run."""
    _IN_RUN.set()
    try:
        with Store(job.out_dir, create=False) as store:  # the sweep's own, or none
            return _run_one(store, job, spec, run_id)
    finally:
        _IN_RUN.clear()


# -- the entry point ---------------------------------------------------------------------------


def _check_args(executor: str, workers: int, run_fn: RunFn,
                options: Mapping[str, Any] | None) -> None:
    if executor not in EXECUTORS or executor not in _EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; valid executors: {', '.join(EXECUTORS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or not (
            1 <= workers <= MAX_WORKERS):
        raise UserError(f"workers must be an int from 1 to {MAX_WORKERS}, got {workers!r}")
    if options and executor != "ray":
        raise UserError(f"executor options {sorted(options)} apply to --executor ray only")
    if executor == "ray":
        from bnlab.sweep.ray_executor import options_from, require_ray

        require_ray()
        options_from(options)
    if executor in ("process", "ray"):
        try:
            pickle.dumps(run_fn)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise ValueError(f"run_fn {run_fn!r} cannot be sent to worker processes ({exc}); "
                             "define it as a module-level function") from exc


def execute(
    specs: Iterable[RunSpec],
    out_dir: str | Path,
    run_fn: RunFn,
    *,
    executor: str = "serial",
    workers: int = 1,
    retry_failed: bool = False,
    progress: bool | None = None,
    lock_timeout: float | None = 0.0,
    checkpoint_root: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
) -> SweepSummary:
    """Execute the runs of a sweep that are not done yet, and store their results.

    Args:
        specs: the runs; duplicates (same key) run once.
        out_dir: the output directory (``<out_dir>/bnlab.db``, ``<out_dir>/checkpoints``).
        run_fn: ``run_fn(spec, ctx) -> outcome``, a module-level function; ``ctx`` is a
            :class:`RunContext`. The outcome (object or dict) has ``status``
            (``"finished"``/``"diverged"``), ``first_bad_step`` and ``steps_run``, like
            ``bnlab.train``'s ``TrainResult``.
        executor: ``"serial"``, ``"process"``, ``"ray"`` or ``"packed"`` (``run_fn`` then needs a
            ``start(spec, ctx)`` attribute returning a steppable run, as
            ``bnlab.experiments.run_spec`` has).
        workers: worker processes of the ``process`` executor (1 to :data:`MAX_WORKERS`;
            no more are started than there are runs to do); runs interleaved at once by
            the ``packed`` executor.
        retry_failed: run ``failed`` runs again, whatever their failure.
        progress: show a tqdm bar on stderr; ``None``: only when stderr is a terminal.
        lock_timeout: seconds to wait for another sweep on ``out_dir``; ``0`` refuses at
            once, ``None`` waits indefinitely.
        checkpoint_root: where the runs' checkpoint folders (and run locks) live, default
            ``<out_dir>/checkpoints``; with Ray on a cluster, a path every node reaches.
        options: executor options, for ``ray`` only (:class:`~bnlab.sweep.ray_executor.
            RayOptions`: ``address``, ``cpus_per_run``, ``gpus_per_run``, ``max_retries``).

    Returns:
        A :class:`SweepSummary`; ``summary.ok`` is false when a run failed or was lost.

    Raises:
        ValueError: for an unknown executor, bad ``workers``, or an unpicklable ``run_fn``
            with the process executor.
        bnlab.sweep.SweepLockedError: if another sweep holds ``out_dir``.
        bnlab.results.StoreError: if the store cannot be written or was lost meanwhile.
        KeyboardInterrupt: re-raised after handing the interrupted runs back as pending.

    Example:
        >>> specs = [RunSpec("demo", {"lr": lr}, seed=s) for lr in (0.1, 1.0) for s in range(3)]
        >>> summary = execute(specs, "bnlab_out", train_one)  # doctest: +SKIP
    """
    _check_args(executor, workers, run_fn, options)
    root = None if checkpoint_root is None else Path(checkpoint_root)
    out = Path(out_dir)
    with dir_lock(out, lock_timeout), Store(out) as store:
        todo, skipped = _plan(store, list(specs), retry_failed)
        job = _Job(out, run_fn, provenance(executor=executor, workers=workers), root, options)
        with _progress_bar(len(todo) + len(skipped), len(skipped), progress) as bar:
            records = _EXECUTORS[executor if todo else "serial"](store, job, todo, bar, workers)
        store.check_intact()
    _prune_root(out)
    return _summarize(skipped, records, len(todo))


def _summarize(skipped: dict[str, str], records: list[RunRecord], started: int
               ) -> SweepSummary:
    counts = Counter(skipped.values()) + Counter(r.status for r in records if r.status != "lost")
    lost = [r for r in records if r.status == "lost"]
    summary = SweepSummary(
        total=len(skipped) + started, skipped=len(skipped), executed=started,
        steps_run=sum(r.steps_run for r in records), lost=len(lost),
        failures=[(r.key, _last_line(r.error)) for r in records if r.status == "failed"],
        not_done=[(r.key, _last_line(r.error)) for r in lost],
        notes=[(r.key, r.note) for r in records if r.note],
    )
    summary.counts.update(counts)
    summary.counts["running"] += len(lost)
    return summary
