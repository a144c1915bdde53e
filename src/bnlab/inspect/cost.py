"""What each probe costs, in training steps of the same model, timed in the same process.

A probe's cost is only meaningful next to what it is added to: :func:`bare_step_seconds`
times one bare training step (zero_grad, forward, backward, optimizer step) of an eager
copy of the model on a real batch, and :class:`Timed` wraps a probe so every call logs
``cost/{probe}`` = its wall time / that step time. On an accelerator both timings wait
for the device (``torch.cuda.synchronize``) at their ends, so queued work is counted where
it belongs; that is one host sync per probe call, never one per training step.

What is not counted: the copy a watching probe takes of the training forward's
activations (``Probe.watch_forward``), which runs inside the training step.
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from bnlab.inspect.panel import eager
from bnlab.probes import Probe, ProbeContext

__all__ = ["MakeOptimizer", "Timed", "bare_step_seconds"]

MakeOptimizer = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
_WARMUP, _REPEATS = 2, 5


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def bare_step_seconds(model: nn.Module, loss_fn: Callable[..., torch.Tensor],
                      batch: tuple[torch.Tensor, torch.Tensor],
                      make_optimizer: MakeOptimizer) -> float:
    """The median wall time of one training step of an eager copy of ``model``.

    The copy (``copy.deepcopy`` of the original module of a compiled model) takes
    ``2`` warm-up and ``5`` timed steps with its own optimizer from ``make_optimizer``;
    ``model`` and the global RNG streams are left as they were.
    """
    twin = copy.deepcopy(eager(model)).train()
    optimizer = make_optimizer(twin.parameters())
    device = _device_of(twin)
    inputs, targets = batch
    times = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for i in range(_WARMUP + _REPEATS):
            _sync(device)
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss_fn(twin(inputs), targets).backward()
            optimizer.step()
            _sync(device)
            if i >= _WARMUP:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


class Timed(Probe):
    """A panel probe that logs its own cost and renames its per-site keys.

    Each call logs ``cost/{name}`` (the call's seconds over ``step_seconds``). A
    ``ValueError`` from the probe (the model cannot be measured that way, e.g. fewer than
    two measurable sites) turns the probe off for the rest of the run and is noted in
    ``notes[name]``; so are the warnings it raised (sites skipped, a compiled model
    measured through its original module), once each.

    Args:
        name: the panel's name of the probe.
        probe: the library probe.
        step_seconds: the time of one bare training step (:func:`bare_step_seconds`).
        rename: ``{key the probe logs: norm-site index}`` for the middle part of its names.
        notes: where problems and warnings are written (shared by the run's probes).
    """

    def __init__(self, name: str, probe: Probe, step_seconds: float, rename: dict[str, str],
                 notes: dict[str, list[str]]) -> None:
        super().__init__(probe.schedule, bn_mode=probe.bn_mode)
        self.name, self.probe = name, probe
        self.step_seconds, self.rename, self.notes = step_seconds, rename, notes
        self.active = True

    def due(self, step: int) -> bool:
        """Whether the wrapped probe runs on ``step`` (never once it has been turned off)."""
        return self.active and self.probe.due(step)

    def watch_forward(self, model: nn.Module) -> AbstractContextManager[None] | None:
        """The wrapped probe's watcher of the training forward pass."""
        return self.probe.watch_forward(model)

    def _log(self, log: Callable[[str, Any], None]) -> Callable[[str, Any], None]:
        def renamed(name: str, value: Any) -> None:
            parts = name.split("/")
            if len(parts) == 3 and parts[1] in self.rename:
                parts[1] = self.rename[parts[1]]
            log("/".join(parts), value)

        return renamed if self.rename else log

    def on_step(self, ctx: ProbeContext) -> None:
        """Run the probe on ``ctx``, log its cost, note what went wrong."""
        device = _device_of(ctx.model)
        _sync(device)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self.probe.on_step(replace(ctx, log=self._log(ctx.log)))
        except ValueError as err:
            self.active = False
            self._note(f"turned off at step {ctx.step}: {err}")
            return
        _sync(device)
        seconds = time.perf_counter() - start
        ctx.log(f"cost/{self.name}", seconds / self.step_seconds)
        for w in caught:
            self._note(str(w.message))

    def _note(self, text: str) -> None:
        seen = self.notes.setdefault(self.name, [])
        if text not in seen:
            seen.append(text)

    def state_dict(self) -> dict[str, Any]:
        """The wrapped probe's state."""
        return self.probe.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the wrapped probe's state."""
        self.probe.load_state_dict(state)
