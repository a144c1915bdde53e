"""The ``ray`` executor: every run of a sweep is a Ray task; only the driver writes the store.

``bnlab run ... --executor ray [--address auto|HOST:PORT] [--gpus-per-run F]
[--cpus-per-run N] [--checkpoint-root DIR]`` (DESIGN.md, "Scale-out").

How a run travels:

* The driver (the process that called :func:`bnlab.sweep.execute`) plans the sweep as for
  any executor (finished runs are skipped, others resume) and submits one Ray task per run
  to do, with the run's resource request (``num_cpus``, ``num_gpus``).
* The task performs the run exactly as the serial executor would (the same
  ``_run_one``: resume point, start, ``run_fn``, outcome), but against a *store proxy*:
  every store call is sent to a relay actor and executed by the driver, which alone opens
  the SQLite store. A call returns once the driver has executed it, so when the training
  loop's flush before checkpoint N returns, every row with step < N is in the store, as
  the loop's contract requires (docs/internals.md, "train").
* Checkpoints live under ``checkpoint_root`` (default ``<out>/checkpoints``), which must
  be a path every node reaches (a shared file system on a cluster). A task whose worker
  process dies (killed, out of memory, a lost node) is retried by Ray (``max_retries``);
  the retry reads ``latest.json`` and resumes from the last checkpoint, the store dropping
  the rows the lost attempt measured at or after it. A run whose retries are spent stays
  resumable and is counted lost.

Ray is an optional extra (``pip install 'bnlab[ray]'``). Without ``address`` a local Ray
instance is started for the sweep and stopped after it; an already initialized Ray (a
test's, a notebook's) is used as it is.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bnlab.errors import UserError
from bnlab.results import Store, StoreError

__all__ = ["RayOptions", "ray_session", "require_ray", "run_on_ray"]

_INSTALL = "--executor ray needs Ray: pip install 'bnlab[ray]' (or pip install ray)"
#: Store methods a task may not call through the relay (the driver's store stays open).
_REFUSED = frozenset({"close"})


def _callable_from_task(name: str) -> bool:
    """Any public :class:`Store` method but ``close`` (writes, and the reads of a resume)."""
    return not name.startswith("_") and name not in _REFUSED and callable(
        getattr(Store, name, None))
#: Seconds the driver waits for a store call before checking its tasks again.
_POLL_S = 0.05


def require_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`UserError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise UserError(_INSTALL) from exc
    return ray


@dataclass(frozen=True)
class RayOptions:
    """How runs are placed on the Ray cluster.

    Attributes:
        address: ``None`` starts a local Ray instance for the sweep; ``"auto"`` joins the
            cluster this machine belongs to; ``"HOST:PORT"`` (or ``ray://HOST:PORT``) joins
            that one.
        cpus_per_run: CPUs each run's task requests (Ray's ``num_cpus``).
        gpus_per_run: GPUs each run's task requests; a fraction packs several runs onto one
            GPU (``0.25``: four).
        max_retries: times a task whose worker died is started again (from its last
            checkpoint).
    """

    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_retries: int = 3

    def __post_init__(self) -> None:
        if not (isinstance(self.cpus_per_run, int | float) and self.cpus_per_run > 0):
            raise UserError(f"--cpus-per-run must be > 0, got {self.cpus_per_run!r}")
        if not (isinstance(self.gpus_per_run, int | float) and self.gpus_per_run >= 0):
            raise UserError(f"--gpus-per-run must be >= 0, got {self.gpus_per_run!r}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or (
                self.max_retries < 0):
            raise UserError(f"max_retries must be an int >= 0, got {self.max_retries!r}")


# -- the relay: store calls from tasks to the driver ------------------------------------


class _Relay:
    """A queue of store calls (from tasks) and their results (from the driver).

    Runs as an async Ray actor with no resources of its own; ``call`` waits for the
    driver's answer without blocking other calls.
    """

    def __init__(self) -> None:
        self._calls: asyncio.Queue = asyncio.Queue()
        self._waiting: dict[int, asyncio.Future] = {}
        self._ids = itertools.count()

    async def call(self, method: str, args: tuple, kwargs: dict) -> tuple[bool, Any]:
        """From a task: queue one store call and wait for ``(ok, result or exception)``."""
        call_id = next(self._ids)
        answer = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = answer
        await self._calls.put((call_id, method, args, kwargs))
        return await answer

    async def take(self, wait_s: float) -> list[tuple[int, str, tuple, dict]]:
        """From the driver: the queued calls, waiting up to ``wait_s`` for the first."""
        try:
            first = await asyncio.wait_for(self._calls.get(), timeout=wait_s)
        except TimeoutError:
            return []
        calls = [first]
        while not self._calls.empty():
            calls.append(self._calls.get_nowait())
        return calls

    def answer(self, call_id: int, ok: bool, value: Any) -> None:
        """From the driver: the result of call ``call_id``."""
        future = self._waiting.pop(call_id, None)
        if future is not None and not future.done():  # its caller may have died
            future.set_result((ok, value))


class _StoreProxy:
    """What a task's ``_run_one`` sees as its store: each call runs on the driver."""

    def __init__(self, relay: Any) -> None:
        self._relay = relay

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if not _callable_from_task(name):
            raise AttributeError(f"a Ray task cannot call Store.{name} (the driver owns the store)")

        def call(*args: Any, **kwargs: Any) -> Any:
            import ray

            ok, value = ray.get(self._relay.call.remote(name, args, kwargs))
            if not ok:
                raise value
            return value

        return call


def _serve(store: Store, relay: Any, ray: Any) -> None:
    """Execute the store calls the tasks queued (waiting up to :data:`_POLL_S` for one).

    Raises:
        StoreError: after answering the caller, when the store itself failed: the sweep
            stops, the run stays resumable.
    """
    for call_id, method, args, kwargs in ray.get(relay.take.remote(_POLL_S)):
        try:
            if not _callable_from_task(method):
                raise AttributeError(f"Store.{method} is not callable from a task")
            result = (True, getattr(store, method)(*args, **kwargs))
        except Exception as exc:
            relay.answer.remote(call_id, False, exc)
            if isinstance(exc, StoreError):
                raise
            continue
        relay.answer.remote(call_id, *result)


# -- the task and the driver loop -------------------------------------------------------


def _task(relay: Any, run_one: Callable[..., Any], spec: Any, run_id: int) -> Any:
    """One run on a Ray worker: the executor's own ``run_one`` against the store proxy."""
    return run_one(_StoreProxy(relay), spec, run_id)


def _connect(ray: Any, address: str | None) -> bool:
    """Join (``address``) or start a Ray instance; return whether this call started it."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, logging_level="WARNING")
    except ConnectionError as exc:
        raise UserError(f"cannot reach a Ray cluster at --address {address} ({exc}); start one "
                        "with `ray start --head`, or leave --address out for a local one") from exc
    return address is None


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Join or start Ray once for several sweeps; stop it at the end if started here.

    ``bnlab reproduce --executor ray`` then pays one start-up, not one per recipe.
    """
    ray = require_ray()
    started = _connect(ray, address)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def run_on_ray(
    store: Store,
    todo: list[tuple[Any, int]],
    run_one: Callable[..., Any],
    on_done: Callable[[Any, int, Any], None],
    options: RayOptions,
) -> list[tuple[Any, int, str]]:
    """Run every ``(spec, run_id)`` of ``todo`` as a Ray task; the driver serves the store.

    Args:
        store: the sweep's open store (only this process touches it).
        todo: the runs to execute.
        run_one: ``run_one(store, spec, run_id) -> record``, picklable (a module-level
            function or a ``functools.partial`` of one), performed on a worker.
        on_done: ``on_done(spec, run_id, record)`` for each run that ended.
        options: addresses and resource requests.

    Returns:
        ``(spec, run_id, why)`` for every run that did not end (its worker died more than
        ``max_retries`` times, or the task could not run): they stay resumable.
    """
    ray = require_ray()
    started = _connect(ray, options.address)
    relay = ray.remote(num_cpus=0)(_Relay).remote()
    task = ray.remote(_task).options(
        num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run,
        max_retries=options.max_retries, retry_exceptions=False)
    running = {task.remote(relay, run_one, spec, run_id): (spec, run_id) for spec, run_id in todo}
    lost: list[tuple[Any, int, str]] = []
    try:
        while running:
            _serve(store, relay, ray)
            done, _ = ray.wait(list(running), num_returns=len(running), timeout=0)
            for ref in done:
                spec, run_id = running.pop(ref)
                try:
                    on_done(spec, run_id, ray.get(ref))
                except ray.exceptions.RayError as exc:
                    lost.append((spec, run_id, _why(exc)))
    finally:
        for ref in running:
            ray.cancel(ref, force=True)  # unfinished runs stay resumable
        ray.kill(relay)
        if started:
            ray.shutdown()
    return lost


def _why(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[-1].strip() if lines else ''}"


def options_from(values: Mapping[str, Any] | None) -> RayOptions:
    """:class:`RayOptions` from the executor options of :func:`bnlab.sweep.execute`.

    Raises:
        UserError: for an unknown option (naming the valid ones) or a bad value.
    """
    values = dict(values or {})
    valid = ("address", "cpus_per_run", "gpus_per_run", "max_retries")
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise UserError(f"unknown ray executor options {unknown}; valid: {', '.join(valid)}")
    return RayOptions(**values)
