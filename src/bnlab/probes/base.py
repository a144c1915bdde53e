"""The probe hook of the training loop.

A :class:`Probe` is a measurement with a schedule. The loop calls :meth:`Probe.on_step`
after ``loss.backward()`` and before ``optimizer.step()`` on the steps the schedule
selects, passing a :class:`ProbeContext`. Probes observe and never steer: whatever extra
passes they run leave parameters, buffers, RNG streams and ``.grad`` exactly as found.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from bnlab.probes._state import BN_MODES

__all__ = ["Probe", "ProbeContext", "Schedule"]

LogFn = Callable[[str, "float | np.ndarray"], None]


@dataclass
class ProbeContext:
    """What a probe sees at one training step.

    Attributes:
        model: the model being trained (in train mode).
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar``.
        batch: ``(inputs, targets)`` of this step.
        optimizer: the optimizer about to step (its state is not to be changed).
        lr: the learning rate of this step.
        step: the 0-based index of this step.
        log: ``log(name, value)`` stores a float metric or a numpy array at this step.
    """

    model: nn.Module
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    batch: tuple[torch.Tensor, torch.Tensor]
    optimizer: torch.optim.Optimizer
    lr: float
    step: int
    log: LogFn


@dataclass(frozen=True)
class Schedule:
    """On which training steps a probe runs.

    A step ``s`` is due when ``s >= start`` and ``(s - start) % every == 0``; when
    ``steps`` is given, exactly the steps it lists are due instead.

    Args:
        every: run every this many steps (>= 1).
        start: the first step to run on (>= 0).
        steps: an explicit set of steps instead of ``every``/``start`` (any iterable of
            ints >= 0 is accepted and stored as a ``frozenset``).

    Raises:
        ValueError: for ``every < 1``, ``start < 0``, a negative or non-integer step, or
            ``steps`` given together with a non-default ``every``/``start``.

    Example:
        >>> Schedule(every=10, start=5).due(25)
        True
        >>> ActivationStatsProbe([1], schedule=Schedule(steps={0, 100, 1000}))
    """

    every: int = 1
    start: int = 0
    steps: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.every) or self.every < 1:
            raise ValueError(f"Schedule: every must be an int >= 1, got {self.every!r}")
        if not _is_int(self.start) or self.start < 0:
            raise ValueError(f"Schedule: start must be an int >= 0, got {self.start!r}")
        if self.steps is None:
            return
        if isinstance(self.steps, (str, bytes)) or not hasattr(self.steps, "__iter__"):
            raise ValueError(f"Schedule: steps must be a set of ints >= 0, got {self.steps!r}")
        steps = tuple(self.steps)
        if not all(_is_int(s) and s >= 0 for s in steps):
            raise ValueError(f"Schedule: steps must be ints >= 0, got {self.steps!r}")
        if (self.every, self.start) != (1, 0):
            raise ValueError("Schedule: give either steps or every/start, not both")
        object.__setattr__(self, "steps", frozenset(int(s) for s in steps))

    def due(self, step: int) -> bool:
        """Whether the probe runs on ``step``."""
        if self.steps is not None:
            return step in self.steps
        return step >= self.start and (step - self.start) % self.every == 0


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Probe:
    """A scheduled measurement for the training loop.

    Subclasses implement :meth:`on_step` and pass ``schedule`` (and, when they run extra
    passes, ``bn_mode``) on to this constructor; the schedule decides :meth:`due`. Probes
    that carry state between steps (e.g. the previous step's moments) keep it in
    attributes listed by :meth:`state_dict` so a resumed run continues exactly.

    Args:
        schedule: a :class:`Schedule`, or an int ``n`` as shorthand for
            ``Schedule(every=n)``.
        bn_mode: the BN mode of the probe's extra passes, ``"train"`` (batch statistics)
            or ``"eval"`` (running statistics); kept as ``self.bn_mode``.

    Raises:
        ValueError: for a schedule that is neither a :class:`Schedule` nor an int >= 1, or
            an unknown ``bn_mode``.
    """

    name: str = "probe"

    def __init__(self, schedule: Schedule | int = 1, *, bn_mode: str = "train") -> None:
        if _is_int(schedule):
            schedule = Schedule(every=schedule)  # type: ignore[arg-type]
        if not isinstance(schedule, Schedule):
            raise ValueError(
                f"schedule must be a Schedule or an int (every n steps), got {schedule!r}"
            )
        if bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
        self.schedule = schedule
        self.bn_mode = bn_mode

    def due(self, step: int) -> bool:
        """Whether the probe runs on ``step`` (see :class:`Schedule`)."""
        return self.schedule.due(step)

    def on_step(self, ctx: ProbeContext) -> None:
        """Measure and ``ctx.log`` the results. Must leave no trace on the model."""
        raise NotImplementedError

    def watch_forward(self, model: nn.Module) -> AbstractContextManager[None] | None:
        """Optionally observe the training forward pass of a due step.

        The loop enters the returned context around the step's own forward pass, before
        :meth:`on_step`. A probe that can measure from that pass (e.g. activation
        statistics of the training batch) captures there instead of running an extra
        forward. Hooks must only read (detach and copy); the default watches nothing.
        """
        del model
        return None

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (override when the probe remembers earlier steps)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        del state
