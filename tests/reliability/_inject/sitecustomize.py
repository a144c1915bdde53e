"""Fault injection for tests/reliability, loaded into every Python process of a test sweep.

The tests put this folder first on ``PYTHONPATH``, so the driver, its spawned pool workers
and multiprocessing's helper processes all import it at startup. Nothing here runs unless
the test asks for it through the environment:

* ``BNLAB_FAULT_PIDS=<file>``: every process appends ``<pid> <start time>`` to the file, so
  the test can check by PID that nothing outlives a killed sweep.
* ``BNLAB_FAULT=<point>:<n>:<action>``: at the n-th time this process reaches ``point``,
  do ``action``. Points: ``step`` (an optimizer update of the training loop), ``ckpt`` (a
  checkpoint or latest.json write: half the bytes reach the temporary file first),
  ``store`` (a store transaction, after its statements and before its COMMIT). Actions:
  ``kill`` (SIGKILL the sweep's driver process, which is this one in a serial sweep),
  ``rmwal`` / ``rmdb`` (delete the database's ``-wal`` file or the database, then go on).

The hooks wrap bnlab's functions after their modules are imported (a post-import hook on
``sys.meta_path``), so importing this file costs nothing when no fault is asked for.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path


def _start_time(pid: int) -> str:
    try:  # field 22 of /proc/<pid>/stat: start time in clock ticks since boot
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def _log_pid() -> None:
    log = os.environ.get("BNLAB_FAULT_PIDS")
    if log:
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()} {_start_time(os.getpid())}\n")


class _Fault:
    """One fault: a point, the hit that triggers it, and what to do then."""

    def __init__(self, spec: str) -> None:
        point, n, self.action = spec.split(":")
        self.point, self.n, self.hits = point, int(n), 0
        # The first process that reads the spec is the sweep's driver; children inherit it.
        self.driver = int(os.environ.setdefault("BNLAB_FAULT_DRIVER", str(os.getpid())))

    def hit(self, point: str) -> bool:
        if point != self.point:
            return False
        self.hits += 1
        return self.hits == self.n

    def fire(self, out_dir: Path | None = None) -> None:
        if self.action == "kill":
            os.kill(self.driver, signal.SIGKILL)
            if self.driver != os.getpid():
                # A worker: let its sweep's death reach it (parent-death signal or
                # watchdog); it goes on meanwhile, as a worker of a killed sweep would.
                return
        elif self.action in ("rmwal", "rmdb") and out_dir is not None:
            name = "bnlab.db-wal" if self.action == "rmwal" else "bnlab.db"
            (out_dir / name).unlink(missing_ok=True)


def _patch_loop(module: object, fault: _Fault) -> None:
    loop = module._Loop
    update = loop.update

    def wrapped(self: object, step: int, batch: object) -> None:
        if fault.hit("step"):
            fault.fire()
        return update(self, step, batch)

    loop.update = wrapped


def _patch_checkpoint(module: object, fault: _Fault) -> None:
    original = module._atomic_write

    def wrapped(path: Path, data: object) -> None:
        if fault.hit("ckpt"):
            tmp = path.with_name(f".{path.name}.tmp")
            if callable(data):  # an older signature: a writer function
                data(tmp)
                with open(tmp, "r+b") as handle:
                    handle.truncate(os.path.getsize(tmp) // 2)
            else:
                tmp.write_bytes(bytes(data)[: len(data) // 2])
            fault.fire()
        return original(path, data)

    module._atomic_write = wrapped


def _patch_store(module: object, fault: _Fault) -> None:
    store = module.Store
    tx = store._tx

    @contextmanager
    def wrapped(self: object):
        with tx(self) as con:
            yield con
            if fault.hit("store"):
                fault.fire(self.out_dir)

    store._tx = wrapped


_PATCHES = {
    "bnlab.train.loop": _patch_loop,
    "bnlab.train.checkpoint": _patch_checkpoint,
    "bnlab.results.store": _patch_store,
}


class _PostImport(importlib.abc.MetaPathFinder):
    """Patch a module of :data:`_PATCHES` right after it is executed."""

    def __init__(self, fault: _Fault) -> None:
        self.fault = fault

    def find_spec(self, name: str, path: object, target: object = None) -> object:
        if name not in _PATCHES:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module: object) -> None:
            execute(module)
            _PATCHES[name](module, self.fault)

        spec.loader.exec_module = exec_module
        return spec


_log_pid()
if os.environ.get("BNLAB_FAULT"):
    sys.meta_path.insert(0, _PostImport(_Fault(os.environ["BNLAB_FAULT"])))
