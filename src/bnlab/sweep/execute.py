"""Run a list of :class:`RunSpec` against the store of one output directory.

Re-running a sweep is always safe (DESIGN.md, "Contracts"):

* ``finished`` and ``diverged`` runs are skipped: the same experiment never runs twice;
* ``pending`` and ``running`` runs (never started, or interrupted) are started again. When
  ``<checkpoint_dir>/latest.json`` exists the run resumes from its step N: the store drops
  the run's rows with ``step >= N`` in the transaction that marks it ``running``, since
  the loop re-measures them (docs/internals.md, "Steps");
* ``failed`` runs are skipped unless ``retry_failed=True``;
* a run that raises is stored ``failed`` with its traceback and the sweep goes on;
  ``KeyboardInterrupt`` hands the run back as ``pending`` and re-raises.

Executors: ``serial`` runs in this process; ``process`` runs on a pool of spawned worker
processes, each opening its own :class:`~bnlab.results.Store` (SQLite in WAL mode lets
them write concurrently); ``ray`` runs each run as a Ray task whose store calls the driver
executes (:mod:`bnlab.sweep.ray_executor`).
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import pickle
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bnlab.errors import UserError
from bnlab.names import EXECUTORS
from bnlab.results import STATUSES, Store, provenance
from bnlab.sweep.context import RunContext
from bnlab.sweep.keys import RunSpec
from bnlab.sweep.lock import dir_lock

__all__ = ["EXECUTORS", "RunFn", "RunRecord", "SweepSummary", "execute", "latest_step"]

RunFn = Callable[[RunSpec, RunContext], Any]
_OUTCOMES = ("finished", "diverged")


@dataclass(frozen=True)
class RunRecord:
    """How one executed run ended (what the summary counts)."""

    key: str
    status: str
    steps_run: int = 0
    error: str | None = None


@dataclass
class SweepSummary:
    """The result of :func:`execute`.

    Attributes:
        total: distinct runs in the sweep.
        skipped: runs not executed (already finished or diverged; failed without
            ``retry_failed``).
        executed: runs started by this call.
        counts: final status -> number of the sweep's runs (every status present).
        steps_run: optimizer steps executed by this call, as the runs reported them.
        failures: ``(key, last line of the error)`` of runs that failed in this call.
        lost: runs whose worker process died; they stay resumable.
    """

    total: int = 0
    skipped: int = 0
    executed: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    steps_run: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    lost: int = 0

    def __str__(self) -> str:
        states = ", ".join(f"{n} {s}" for s, n in self.counts.items() if n)
        return (f"{self.total} runs ({states or 'none'}): {self.executed} executed, "
                f"{self.skipped} skipped, {self.steps_run} steps")


def latest_step(checkpoint_dir: Path) -> int | None:
    """The step of ``<checkpoint_dir>/latest.json``, or ``None`` when there is none.

    Raises:
        ValueError: if the file exists but holds no step ``>= 0``.
    """
    path = Path(checkpoint_dir) / "latest.json"
    if not path.is_file():
        return None
    try:
        step = json.loads(path.read_text())["step"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read the checkpoint step from {path} ({exc}); "
                         f"delete {path.parent} to restart the run from scratch") from exc
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"{path} holds step {step!r}, not an int >= 0; delete {path.parent} "
                         "to restart the run from scratch")
    return step


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
    store.finish_run(run_id, status, error=error)
    return RunRecord(key, status, steps, error)


def _run_one(
    store: Store, out_dir: Path, spec: RunSpec, run_id: int, run_fn: RunFn, prov: dict,
    progress: bool = False, checkpoint_root: Path | None = None,
) -> RunRecord:
    """Start (or resume) one run, call ``run_fn`` and store how it ended."""
    key = spec.key
    ckpt = Path(checkpoint_root or Path(out_dir) / "checkpoints") / key[:16]
    try:
        resumed_from = latest_step(ckpt)
    except ValueError as exc:
        store.finish_run(run_id, "failed", error=str(exc))
        return RunRecord(key, "failed", 0, str(exc))
    store.start_run(run_id, resumed_from=resumed_from, provenance=prov)
    ctx = RunContext(store, run_id, key, ckpt, resumed_from)
    ctx.progress = progress
    try:
        outcome = run_fn(spec, ctx)
        ctx.flush()
    except KeyboardInterrupt:
        ctx.flush()  # harmless: rows past the checkpoint are dropped on resume
        store.finish_run(run_id, "pending", error="interrupted (KeyboardInterrupt); re-run")
        raise
    except Exception:
        error = traceback.format_exc()
        ctx.flush()
        store.finish_run(run_id, "failed", error=error)
        _prune(ckpt)
        return RunRecord(key, "failed", 0, error)
    record = _finish(store, run_id, key, outcome)
    _prune(ckpt)
    return record


def _run_on_ray_worker(out_dir: str, checkpoint_root: str | None, run_fn: RunFn, prov: dict,
                       store: Store, spec: RunSpec, run_id: int) -> RunRecord:
    """The task of one Ray run: ``_run_one`` against the driver's store (a proxy)."""
    root = None if checkpoint_root is None else Path(checkpoint_root)
    return _run_one(store, Path(out_dir), spec, run_id, run_fn, prov, checkpoint_root=root)


def _ray(store: Store, out_dir: Path, todo: list, run_fn: RunFn, prov: dict, bar: tqdm,
         options: Mapping[str, Any] | None, checkpoint_root: Path | None
         ) -> tuple[list[RunRecord], int]:
    from bnlab.sweep import ray_executor

    records: list[RunRecord] = []

    def done(spec: RunSpec, run_id: int, record: RunRecord) -> None:
        records.append(record)
        bar.set_postfix_str(f"last {spec.key[:8]} ({record.status})")
        bar.update(1)

    root = None if checkpoint_root is None else str(checkpoint_root)
    run_one = functools.partial(_run_on_ray_worker, str(out_dir), root, run_fn, prov)
    lost = ray_executor.run_on_ray(store, todo, run_one, done,
                                   ray_executor.options_from(options))
    return records, len(lost)


def _prune(ckpt: Path) -> None:
    """Remove a run's checkpoint folder, and ``checkpoints/``, once they are empty."""
    for folder in (ckpt, ckpt.parent):
        try:
            folder.rmdir()  # only succeeds on an empty folder
        except OSError:
            return


def _run_in_worker(
    out_dir: str, spec: RunSpec, run_id: int, run_fn: RunFn, prov: dict,
    checkpoint_root: Path | None = None,
) -> RunRecord:
    """The task of one process-pool worker: its own store connection, one run."""
    with Store(out_dir) as store:
        return _run_one(store, Path(out_dir), spec, run_id, run_fn, prov,
                        checkpoint_root=checkpoint_root)


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
        status = store.run(run_id)["status"]
        if status in _OUTCOMES or (status == "failed" and not retry_failed):
            skipped[key] = status
        else:
            todo.append((spec, run_id))
    return todo, skipped


def _progress_bar(total: int, initial: int, progress: bool | None) -> tqdm:
    show = sys.stderr.isatty() if progress is None else bool(progress)
    return tqdm(total=total, initial=initial, desc="sweep", unit="run", disable=not show,
                file=sys.stderr, dynamic_ncols=True)


def _serial(store: Store, out_dir: Path, todo: list, run_fn: RunFn, prov: dict,
            bar: tqdm, checkpoint_root: Path | None = None) -> list[RunRecord]:
    records = []
    for spec, run_id in todo:
        bar.set_postfix_str(f"{spec.recipe} {spec.key[:8]} seed={spec.seed}")
        # A per-run bar under the sweep bar; worker processes never draw one.
        records.append(_run_one(store, out_dir, spec, run_id, run_fn, prov, not bar.disable,
                                checkpoint_root))
        bar.update(1)
    return records


def _pool(store: Store, out_dir: Path, todo: list, run_fn: RunFn, prov: dict, bar: tqdm,
          workers: int, checkpoint_root: Path | None = None) -> tuple[list[RunRecord], int]:
    records, lost = [], 0
    ctx = multiprocessing.get_context("spawn")  # fork would copy the driver's SQLite handle
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        running: dict[Future, tuple[RunSpec, int]] = {
            pool.submit(_run_in_worker, str(out_dir), spec, run_id, run_fn, prov,
                        checkpoint_root): (spec, run_id)
            for spec, run_id in todo
        }
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                spec, run_id = running.pop(fut)
                record = _collect(store, fut, spec, run_id)
                lost += record is None
                records += [record] if record is not None else []
                bar.set_postfix_str(f"last {spec.key[:8]} ({record.status if record else 'lost'})")
                bar.update(1)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return records, lost


def _collect(store: Store, fut: Future, spec: RunSpec, run_id: int) -> RunRecord | None:
    """A worker's record; a task that could not run is stored failed (None if lost)."""
    try:
        return fut.result()
    except BrokenProcessPool:
        return None  # the worker died (killed, out of memory): the run stays resumable
    except Exception:
        error = traceback.format_exc()
        store.finish_run(run_id, "failed", error=error)
        return RunRecord(spec.key, "failed", 0, error)


def _check_args(executor: str, workers: int, run_fn: RunFn,
                options: Mapping[str, Any] | None) -> None:
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; valid executors: {', '.join(EXECUTORS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UserError(f"workers must be an int >= 1, got {workers!r}")
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
        executor: ``"serial"``, ``"process"`` or ``"ray"``.
        workers: worker processes of the ``process`` executor.
        retry_failed: run ``failed`` runs again.
        progress: show a tqdm bar on stderr; ``None``: only when stderr is a terminal.
        lock_timeout: seconds to wait for another sweep on ``out_dir``; ``0`` refuses at
            once, ``None`` waits indefinitely.
        checkpoint_root: where the runs' checkpoint folders live (default
            ``<out_dir>/checkpoints``); with Ray on a cluster, a path every node reaches.
        options: executor options, for ``ray`` only (:class:`~bnlab.sweep.ray_executor.
            RayOptions`: ``address``, ``cpus_per_run``, ``gpus_per_run``, ``max_retries``).

    Returns:
        A :class:`SweepSummary`.

    Raises:
        ValueError: for an unknown executor, bad ``workers``, or an unpicklable ``run_fn``
            with the process executor.
        bnlab.sweep.SweepLockedError: if another sweep holds ``out_dir``.
        KeyboardInterrupt: re-raised after handing the interrupted run back as pending.

    Example:
        >>> specs = [RunSpec("demo", {"lr": lr}, seed=s) for lr in (0.1, 1.0) for s in range(3)]
        >>> summary = execute(specs, "bnlab_out", train_one)  # doctest: +SKIP
    """
    _check_args(executor, workers, run_fn, options)
    root = None if checkpoint_root is None else Path(checkpoint_root)
    out = Path(out_dir)
    with dir_lock(out, lock_timeout), Store(out) as store:
        todo, skipped = _plan(store, list(specs), retry_failed)
        prov = provenance(executor=executor, workers=workers)
        with _progress_bar(len(todo) + len(skipped), len(skipped), progress) as bar:
            if executor == "serial" or not todo:
                records, lost = _serial(store, out, todo, run_fn, prov, bar, root), 0
            elif executor == "ray":
                records, lost = _ray(store, out, todo, run_fn, prov, bar, options, root)
            else:
                records, lost = _pool(store, out, todo, run_fn, prov, bar, workers, root)
    return _summarize(skipped, records, lost, len(todo))


def _summarize(skipped: dict[str, str], records: list[RunRecord], lost: int, started: int
               ) -> SweepSummary:
    counts = Counter(skipped.values()) + Counter(r.status for r in records)
    summary = SweepSummary(
        total=len(skipped) + started, skipped=len(skipped), executed=started,
        steps_run=sum(r.steps_run for r in records), lost=lost,
        failures=[(r.key, _last_line(r.error)) for r in records if r.status == "failed"],
    )
    summary.counts.update(counts)
    summary.counts["running"] += lost
    return summary
