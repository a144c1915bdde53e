"""Learning-rate schedules as frozen configs, evaluated by one small runtime object.

Every schedule is a *multiplier* of each parameter group's base learning rate: at step
``s`` (updates completed before this one) the loop sets ``lr_g = base_lr_g · factor(s)``.

| config | factor(s) |
|---|---|
| :class:`Constant` | 1 |
| :class:`Step` | γ^⌊s / every⌋ |
| :class:`Exponential` | γ^s |
| :class:`Cosine` | f_min + (1 − f_min)·(1 + cos(π·min(s, T)/T))/2 |
| :class:`Warmup` | (f₀ + (1 − f₀)·min(1, (s+1)/W)) · then(s) |
| :class:`Plateau` | scale · then(s); scale ← max(scale·γ, f_min) when the metric stalls |

``Warmup`` and ``Plateau`` wrap another schedule (``then``), so e.g.
``Warmup(500, then=Cosine(10_000))`` composes. ``then`` is evaluated at the same step ``s``
(not ``s − W``), so a warm-up never shifts the schedule it wraps.

Example:
    >>> sched = LRSchedule(Warmup(100, then=Step(every=1000, gamma=0.5)))
    >>> sched.factor(0), sched.factor(99), sched.factor(1000)
    (0.01, 1.0, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Constant",
    "Cosine",
    "Exponential",
    "LRSchedule",
    "Plateau",
    "Schedule",
    "Step",
    "Warmup",
]


@dataclass(frozen=True)
class Constant:
    """The base learning rate at every step."""

    def factor(self, step: int) -> float:
        """Return 1."""
        del step
        return 1.0


@dataclass(frozen=True)
class Step:
    """Multiply the learning rate by ``gamma`` every ``every`` steps.

    Attributes:
        every: the period in steps (≥ 1).
        gamma: the multiplier applied at each period, in (0, 1].
    """

    every: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _positive_int("Step.every", self.every)
        _unit_interval("Step.gamma", self.gamma)

    def factor(self, step: int) -> float:
        """Return γ^⌊step / every⌋."""
        return self.gamma ** (step // self.every)


@dataclass(frozen=True)
class Exponential:
    """Multiply the learning rate by ``gamma`` after every step.

    Attributes:
        gamma: the per-step multiplier, in (0, 1].
    """

    gamma: float

    def __post_init__(self) -> None:
        _unit_interval("Exponential.gamma", self.gamma)

    def factor(self, step: int) -> float:
        """Return γ^step."""
        return self.gamma**step


@dataclass(frozen=True)
class Cosine:
    """Cosine annealing from the base rate to ``min_factor`` × base over ``total_steps``.

    Attributes:
        total_steps: T, the step at which the minimum is reached (and then held).
        min_factor: f_min in [0, 1].
    """

    total_steps: int
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        _positive_int("Cosine.total_steps", self.total_steps)
        if not 0.0 <= self.min_factor <= 1.0:
            raise ValueError(f"Cosine.min_factor must be in [0, 1], got {self.min_factor}")

    def factor(self, step: int) -> float:
        """Return f_min + (1 − f_min)·(1 + cos(π·min(step, T)/T))/2."""
        t = min(step, self.total_steps) / self.total_steps
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * t))


@dataclass(frozen=True)
class Warmup:
    """Linear warm-up over ``steps`` steps, multiplying the schedule ``then``.

    The first update (step 0) uses f₀ + (1 − f₀)/W of the rate, update W − 1 the full rate.

    Attributes:
        steps: W, the warm-up length (≥ 1).
        then: the schedule it multiplies (evaluated at the same step).
        start_factor: f₀ in [0, 1).
    """

    steps: int
    then: Schedule = field(default_factory=Constant)
    start_factor: float = 0.0

    def __post_init__(self) -> None:
        _positive_int("Warmup.steps", self.steps)
        if not 0.0 <= self.start_factor < 1.0:
            raise ValueError(f"Warmup.start_factor must be in [0, 1), got {self.start_factor}")

    def ramp(self, step: int) -> float:
        """Return f₀ + (1 − f₀)·min(1, (step + 1)/W)."""
        frac = min(1.0, (step + 1) / self.steps)
        return self.start_factor + (1.0 - self.start_factor) * frac


@dataclass(frozen=True)
class Plateau:
    """Drop the learning rate when a logged metric stops improving.

    The loop feeds every logged metric to :meth:`LRSchedule.observe`; values of ``metric``
    count. A value improves on the best so far when it beats it by more than
    ``threshold · |best|`` (relative, in the direction of ``mode``). After more than
    ``patience`` values in a row without improvement, the scale is multiplied by ``gamma``
    (never below ``min_factor``) and the count restarts. Non-finite values never improve.

    Attributes:
        metric: the name of a logged metric, e.g. ``"train_loss"`` or ``"test_loss"``.
        gamma: the drop multiplier, in (0, 1).
        patience: logged values without improvement tolerated before a drop (≥ 0).
        mode: ``"min"`` (lower is better) or ``"max"``.
        threshold: the relative improvement that counts (≥ 0).
        min_factor: the smallest scale, in [0, 1].
        then: the schedule it multiplies.
    """

    metric: str
    gamma: float = 0.1
    patience: int = 10
    mode: str = "min"
    threshold: float = 1e-4
    min_factor: float = 0.0
    then: Schedule = field(default_factory=Constant)

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma < 1.0:
            raise ValueError(f"Plateau.gamma must be in (0, 1), got {self.gamma}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"Plateau.mode must be 'min' or 'max', got {self.mode!r}")
        if self.patience < 0 or self.threshold < 0.0:
            raise ValueError("Plateau.patience and Plateau.threshold must be >= 0")

    def improves(self, value: float, best: float) -> bool:
        """Whether ``value`` beats ``best`` by the relative threshold."""
        if not math.isfinite(value):
            return False
        if not math.isfinite(best):
            return True
        margin = self.threshold * abs(best)
        return value < best - margin if self.mode == "min" else value > best + margin


Schedule = Constant | Step | Exponential | Cosine | Warmup | Plateau


def _positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def _unit_interval(name: str, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")


def _find_plateau(config: Schedule) -> Plateau | None:
    """Return the (single) Plateau inside a schedule, if any."""
    found = []
    node: Any = config
    while node is not None:
        if isinstance(node, Plateau):
            found.append(node)
        node = getattr(node, "then", None)
    if len(found) > 1:
        raise ValueError("a schedule may contain at most one Plateau")
    return found[0] if found else None


class LRSchedule:
    """The runtime of a schedule config: ``factor(step)``, plus the state of a Plateau.

    Args:
        config: any :data:`Schedule`.

    Raises:
        TypeError: if ``config`` is not a schedule config.
    """

    def __init__(self, config: Schedule) -> None:
        node: Any = config
        while node is not None:
            if not isinstance(node, (Constant, Step, Exponential, Cosine, Warmup, Plateau)):
                raise TypeError(f"unknown schedule {node!r}; use one of {', '.join(__all__)}")
            node = getattr(node, "then", None)
        self.config = config
        self._plateau = _find_plateau(config)
        self.scale = 1.0
        self.best = math.inf if self._plateau is None or self._plateau.mode == "min" else -math.inf
        self.bad = 0

    def factor(self, step: int) -> float:
        """The multiplier of the base learning rates for the update at ``step``."""
        return self._factor(self.config, step)

    def _factor(self, node: Schedule, step: int) -> float:
        if isinstance(node, Warmup):
            return node.ramp(step) * self._factor(node.then, step)
        if isinstance(node, Plateau):
            return self.scale * self._factor(node.then, step)
        return node.factor(step)

    def observe(self, metrics: Mapping[str, float]) -> None:
        """Feed logged metrics; only a Plateau's metric changes anything."""
        plateau = self._plateau
        if plateau is None or plateau.metric not in metrics:
            return
        value = float(metrics[plateau.metric])
        if plateau.improves(value, self.best):
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad > plateau.patience:
            self.scale = max(self.scale * plateau.gamma, plateau.min_factor)
            self.bad = 0

    def state_dict(self) -> dict[str, float | int]:
        """The Plateau state, as plain numbers (checkpointable with ``weights_only``)."""
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: Mapping[str, float | int]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.scale = float(state["scale"])
        self.best = float(state["best"])
        self.bad = int(state["bad"])
