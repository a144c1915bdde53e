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

__all__ = ["Probe", "ProbeContext"]

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


class Probe:
    """A scheduled measurement for the training loop.

    Subclasses implement :meth:`on_step`. A probe runs on step ``s`` when
    ``s >= start`` and ``(s - start) % every == 0``, or, if ``steps`` is given, exactly on
    those steps. Probes that carry state between steps (e.g. the previous step's moments)
    keep it in attributes listed by :meth:`state_dict` so a resumed run continues exactly.

    Args:
        every: run every this many steps.
        start: first step to run on.
        steps: an explicit set of steps instead of ``every``/``start``.
    """

    name: str = "probe"

    def __init__(self, every: int = 1, *, start: int = 0, steps: Any = None) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self.start = start
        self.steps = None if steps is None else frozenset(int(s) for s in steps)

    def due(self, step: int) -> bool:
        """Whether the probe runs on ``step``."""
        if self.steps is not None:
            return step in self.steps
        return step >= self.start and (step - self.start) % self.every == 0

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
