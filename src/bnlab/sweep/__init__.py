"""bnlab.sweep: run keys, resumable sweeps and typed configs (no torch of its own).

* :func:`run_key` / :class:`RunSpec`: what a run is, and its stable identity.
* :func:`execute`: run the specs that are not done yet, serially or on a process pool,
  resuming interrupted runs from their checkpoints; :class:`SweepSummary` says what ran.
* :class:`RunContext`: the buffered sink a ``run_fn`` logs through.
* :mod:`bnlab.sweep.config`: frozen dataclass configs and validated overrides.
"""

from bnlab.sweep.config import ConfigError, apply_overrides, config_to_dict
from bnlab.sweep.context import RunContext
from bnlab.sweep.execute import (
    EXECUTORS,
    RunRecord,
    SweepSummary,
    execute,
    failure_kind,
    latest_step,
)
from bnlab.sweep.keys import EXECUTION_FIELDS, RunSpec, canonical_json, run_key
from bnlab.sweep.lock import LOCK_NAME, RunBusyError, SweepLockedError, dir_lock, run_lock

__all__ = [
    "EXECUTION_FIELDS",
    "EXECUTORS",
    "LOCK_NAME",
    "ConfigError",
    "RunBusyError",
    "RunContext",
    "RunRecord",
    "RunSpec",
    "SweepLockedError",
    "SweepSummary",
    "apply_overrides",
    "canonical_json",
    "config_to_dict",
    "dir_lock",
    "execute",
    "failure_kind",
    "latest_step",
    "run_key",
    "run_lock",
]
