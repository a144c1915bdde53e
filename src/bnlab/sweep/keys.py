"""Run keys and run specifications.

A run's key is the sha256 of its canonical configuration, so the same experiment is
stored once and never run twice, whichever recipe asks for it (DESIGN.md, "Results").
Fields that change how a run is executed but not what it computes are left out.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bnlab.names import EXECUTION_FIELDS

__all__ = ["EXECUTION_FIELDS", "RunSpec", "canonical_json", "run_key"]



def _check_finite(value: Any, path: str) -> None:
    """Reject NaN/inf: JSON has no spelling for them that every reader agrees on."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"config field {path!r} is {value!r}; a run key needs finite numbers")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_finite(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_finite(v, f"{path}[{i}]")


def canonical_json(config: Mapping[str, Any]) -> str:
    """The canonical JSON text of ``config`` without its execution-only fields.

    Keys are sorted at every level, separators carry no spaces, tuples read as lists.

    Raises:
        TypeError: for a value JSON cannot hold (the message names it).
        ValueError: for a non-finite float.
    """
    kept = {k: v for k, v in config.items() if k not in EXECUTION_FIELDS}
    for k, v in kept.items():
        _check_finite(v, str(k))
    try:
        return json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False)
    except TypeError as exc:
        raise TypeError(f"run config is not JSON-serializable ({exc}); "
                        "use plain numbers, strings, bools, lists and dicts") from exc


def run_key(config: Mapping[str, Any]) -> str:
    """The sha256 hex digest of :func:`canonical_json` of ``config``.

    The execution-only fields ``out``, ``executor``, ``workers`` and ``progress`` are
    ignored; any other change (a value, an added field, a nested value) changes the key.

    Example:
        >>> run_key({"lr": 0.1, "workers": 4}) == run_key({"lr": 0.1})
        True
    """
    return hashlib.sha256(canonical_json(config).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: which recipe asks for it, its configuration and its seed.

    Attributes:
        recipe: the recipe name, e.g. ``"ioffe2015.mnist"``.
        config: the run's configuration (JSON-ready; see :func:`bnlab.sweep.config_to_dict`).
        seed: the run's seed. It is part of the key: :attr:`key` hashes ``config`` with
            ``seed`` added, and a ``config["seed"]`` that disagrees is an error.
        execution: how to run it, not what it computes (``device``): neither part of the
            key nor stored with the config.
    """

    recipe: str
    config: dict[str, Any] = field(hash=False)
    seed: int = 0
    execution: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if "seed" in self.config and self.config["seed"] != self.seed:
            raise ValueError(
                f"RunSpec seed {self.seed} disagrees with config['seed'] = "
                f"{self.config['seed']!r}; pass the same seed in both or only one"
            )

    @property
    def key(self) -> str:
        """The run key: :func:`run_key` of the config with the seed."""
        return run_key({**self.config, "seed": self.seed})
