"""The generic training loop.

:func:`train` runs ``steps`` optimizer updates of any model on batches from a
``bnlab.data.Loader``-like object, with a learning-rate schedule, periodic evaluation,
probes, checkpoints that resume bit-identically, and divergence detection without a host
sync per step. Step numbers follow docs/internals.md (Steps): step ``s`` is the number of
updates completed when a quantity is measured.

What is logged to the sink:

* ``train_loss`` at steps 0, k, 2k, … (k = ``log_every``): the mean training loss of the
  updates ``s … s+k−1`` (the last interval may be shorter). Logged once the interval ends;
  a non-finite mean is not logged (the run is then diverged).
* every metric ``evaluate(model)`` returns, at steps ``eval_every``, ``2·eval_every``, …
  and at ``steps``;
* whatever probes log, at the step they run on.

Example:
    >>> result = train(model, loader, nn.functional.cross_entropy,
    ...                build_optimizer(SGD(lr=0.1), model.parameters()), steps=1000,
    ...                schedule=Warmup(100, then=Cosine(1000)), sink=MemorySink())
    >>> result.status
    'finished'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from bnlab.probes.base import Probe, ProbeContext
from bnlab.train._guard import LossGuard
from bnlab.train._progress import Progress
from bnlab.train.checkpoint import (
    get_rng_state,
    load_latest,
    remove_checkpoints,
    save_checkpoint,
    set_rng_state,
)
from bnlab.train.schedules import Constant, LRSchedule, Schedule
from bnlab.train.sink import NullSink, Sink

__all__ = ["BatchSource", "TrainResult", "train"]

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Evaluate = Callable[[nn.Module], dict[str, float]]
CHECKPOINT_FORMAT = 1


class BatchSource(Protocol):
    """What the loop needs from a loader (``bnlab.data.Loader`` has it).

    ``len(loader)`` is the number of batches per epoch; ``epoch(e, start)`` yields the
    batches of epoch ``e`` from batch index ``start``, a pure function of ``e``.
    """

    def __len__(self) -> int: ...

    def epoch(self, e: int, start: int = 0) -> Iterator[Batch]:
        """Yield the batches of epoch ``e`` from index ``start``."""
        ...


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`train`.

    Attributes:
        status: ``"finished"`` or ``"diverged"``.
        first_bad_step: the first step whose loss was non-finite or exploded, else ``None``.
        resumed_from: the checkpoint step the run resumed from, else ``None``.
        steps_run: optimizer updates executed by this call.
        final_metrics: the last logged ``train_loss`` and evaluation metrics.
    """

    status: str
    first_bad_step: int | None
    resumed_from: int | None
    steps_run: int
    final_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class _Options:
    steps: int
    log_every: int
    eval_every: int
    checkpoint_every: int
    checkpoint_dir: Path | None
    divergence_factor: float | None

    def validate(self) -> None:
        for name in ("steps", "log_every"):
            _int_at_least(name, getattr(self, name), 1)
        for name in ("eval_every", "checkpoint_every"):
            _int_at_least(name, getattr(self, name), 0)
        if self.checkpoint_every and self.checkpoint_dir is None:
            raise ValueError("checkpoint_every > 0 needs a checkpoint_dir to write to")
        if self.divergence_factor is not None and not self.divergence_factor > 1.0:
            raise ValueError(
                f"divergence_factor must be > 1 (or None to check finiteness only), "
                f"got {self.divergence_factor}"
            )


def _int_at_least(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _batches(loader: BatchSource, start: int) -> Iterator[Batch]:
    """Batches from step ``start`` on, crossing epochs (resume-safe, see data.Loader)."""
    per_epoch = len(loader)
    if per_epoch < 1:
        raise ValueError("the loader yields no batch per epoch; use a smaller batch size")
    epoch, index = divmod(start, per_epoch)
    while True:
        yield from loader.epoch(epoch, start=index)
        epoch, index = epoch + 1, 0


class _Loop:
    """One call of :func:`train`: the state and the small steps of the loop."""

    def __init__(self, model: nn.Module, loader: BatchSource, loss_fn: LossFn,
                 optimizer: torch.optim.Optimizer, opts: _Options, schedule: Schedule,
                 evaluate: Evaluate | None, probes: Sequence[Probe], sink: Sink) -> None:
        self.model, self.loader, self.loss_fn, self.optimizer = model, loader, loss_fn, optimizer
        self.opts, self.evaluate, self.probes, self.sink = opts, evaluate, tuple(probes), sink
        self.schedule = LRSchedule(schedule)
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.guard = LossGuard(opts.divergence_factor)
        self.lr_factor: float | None = None
        self.final: dict[str, float] = {}
        self.progress: Progress | None = None

    # -- resume and checkpoints -------------------------------------------------------
    def resume(self) -> int | None:
        """Load the latest checkpoint, if any, and return its step."""
        if self.opts.checkpoint_dir is None:
            return None
        loaded = load_latest(self.opts.checkpoint_dir)
        if loaded is None:
            return None
        step, payload = loaded
        if payload.get("format") != CHECKPOINT_FORMAT or len(payload["probes"]) != len(self.probes):
            raise ValueError(
                f"checkpoint in {self.opts.checkpoint_dir} does not match this run "
                "(format or number of probes differ); delete the directory to restart"
            )
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.schedule.load_state_dict(payload["schedule"])
        self.guard.load_state_dict(payload["guard"], _device_of(self.model))
        for probe, state in zip(self.probes, payload["probes"], strict=True):
            probe.load_state_dict(state)
        set_rng_state(self.model, payload["rng"])
        return step

    def checkpoint(self, step: int) -> None:
        """Flush the sink, then write checkpoint ``step`` (internals.md: rows < N stored)."""
        self.sink.flush()
        payload = {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "guard": self.guard.state_dict(),
            "probes": [p.state_dict() for p in self.probes],
            "rng": get_rng_state(self.model),
        }
        directory = self.opts.checkpoint_dir
        if directory is None:  # unreachable: _Options.validate requires it
            raise RuntimeError("checkpoint requested without a checkpoint_dir")
        # A sink that stores rows says what it holds, so a resume can check nothing was lost.
        meta = getattr(self.sink, "checkpoint_meta", None)
        save_checkpoint(directory, step, payload, meta=meta(step) if callable(meta) else None)

    # -- logging -----------------------------------------------------------------------
    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        if values:
            self.sink.log_metrics(step, values)
            self.schedule.observe(values)
            self.final.update(values)

    def probe_log(self, step: int) -> Callable[[str, Any], None]:
        def log(name: str, value: Any) -> None:
            if isinstance(value, torch.Tensor) and value.numel() != 1:
                value = value.detach().cpu().numpy()
            if isinstance(value, np.ndarray):
                self.sink.log_array(step, name, value)
            else:
                self.sink.log_metrics(step, {name: float(value)})

        return log

    def close_interval(self, end: int) -> int | None:
        """Read the loss guard (one host sync); log ``train_loss``; return a bad step."""
        start = self.guard.start
        mean, bad = self.guard.read()
        if np.isfinite(mean):
            self.log_metrics(start, {"train_loss": mean})
        if self.progress is not None:
            self.progress.advance(end, {"loss": mean})
        return bad

    def run_evaluation(self, step: int) -> None:
        """Call ``evaluate`` in eval mode without autograd; restore every module's mode."""
        if self.evaluate is None:
            return
        flags = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            with torch.no_grad():
                metrics = {k: float(v) for k, v in self.evaluate(self.model).items()}
        finally:
            for m, flag in flags:
                m.training = flag
        self.log_metrics(step, metrics)
        if self.progress is not None:
            self.progress.advance(step, metrics)

    # -- the step ------------------------------------------------------------------------
    def set_lr(self, step: int) -> float:
        factor = self.schedule.factor(step)
        if factor != self.lr_factor:  # avoid touching param groups when nothing changed
            for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
                group["lr"] = base * factor
            self.lr_factor = factor
        return self.base_lrs[0] * factor

    @contextmanager
    def watching(self, due: list[Probe]) -> Iterator[None]:
        """Enter the due probes' watchers of the training forward pass (if they have one)."""
        with ExitStack() as stack:
            for probe in due:
                watcher = probe.watch_forward(self.model)
                if watcher is not None:
                    stack.enter_context(watcher)
            yield

    def update(self, step: int, batch: Batch) -> None:
        """One optimizer update; probes run between backward and ``optimizer.step()``."""
        lr = self.set_lr(step)
        inputs, targets = batch
        self.optimizer.zero_grad(set_to_none=True)
        due = [p for p in self.probes if p.due(step)] if self.probes else []
        with self.watching(due) if due else nullcontext():
            loss = self.loss_fn(self.model(inputs), targets)
        loss.backward()
        for probe in due:
            probe.on_step(ProbeContext(self.model, self.loss_fn, batch, self.optimizer,
                                       lr, step, self.probe_log(step)))
        self.optimizer.step()
        self.guard.push(loss)

    def due(self, every: int, step: int) -> bool:
        return every > 0 and step % every == 0

    def run(self, start: int) -> tuple[str, int | None]:
        """Steps ``start … steps−1``; return (status, first bad step)."""
        opts, bad = self.opts, None
        batches = _batches(self.loader, start)
        self.model.train()
        for step in range(start, opts.steps):
            if step > start and self.due(opts.checkpoint_every, step):
                self.checkpoint(step)
            if step > 0 and self.due(opts.eval_every, step):
                if self.guard.peek() is not None:  # do not evaluate a diverged model
                    return "diverged", self.close_interval(step)
                self.run_evaluation(step)
            self.update(step, next(batches))
            if (step + 1) % opts.log_every == 0 or step + 1 == opts.steps:
                bad = self.close_interval(step + 1)
                if bad is not None:
                    return "diverged", bad
        self.run_evaluation(opts.steps)
        return "finished", None


def _device_of(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    return torch.device("cpu")


def train(
    model: nn.Module,
    loader: BatchSource,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    *,
    steps: int,
    schedule: Schedule | None = None,
    evaluate: Evaluate | None = None,
    eval_every: int = 0,
    probes: Sequence[Probe] = (),
    sink: Sink | None = None,
    log_every: int = 100,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
    divergence_factor: float | None = 100.0,
    progress: bool = False,
    desc: str | None = None,
) -> TrainResult:
    """Train ``model`` for ``steps`` optimizer updates.

    If ``checkpoint_dir`` holds a checkpoint (``latest.json``), the run resumes from it and
    continues bit-identically on CPU; build ``model``, ``optimizer`` and probes as for a
    fresh run. The learning rate of each parameter group is its initial ``lr`` times
    ``schedule`` (see :mod:`bnlab.train.schedules`).

    Args:
        model: the network; put in train mode by the loop.
        loader: yields ``(inputs, targets)`` batches already on the model's device.
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar tensor``.
        optimizer: e.g. from :func:`bnlab.train.build_optimizer`.
        steps: the total number of updates of the run (also when resuming).
        schedule: a learning-rate schedule config; ``None`` is :class:`Constant`.
        evaluate: ``evaluate(model) -> {name: value}``, called in eval mode under
            ``torch.no_grad()`` at every ``eval_every`` steps and at ``steps``.
        eval_every: evaluation period (0: only at the end).
        probes: :class:`bnlab.probes.Probe` objects, called after backward and before
            ``optimizer.step()`` on their due steps; their ``log`` writes at that step.
        sink: where metrics and arrays go (:class:`bnlab.train.MemorySink`, the results
            store); ``None`` discards them.
        log_every: k, the period of ``train_loss`` and of the divergence check (one host
            sync per k steps).
        checkpoint_dir: where checkpoints live; removed there when the run ends.
        checkpoint_every: checkpoint period in steps (0: never).
        divergence_factor: a loss above this multiple of the step-0 loss (when positive)
            counts as divergence, as does a non-finite loss; ``None`` checks finiteness only.
        progress: show a progress bar (only when stderr is a terminal).
        desc: the progress bar's label.

    Returns:
        A :class:`TrainResult`. A diverged run stops at the end of the log interval (or
        before the evaluation) where it is detected.

    Raises:
        ValueError: for a bad option or a checkpoint that does not fit the run.
    """
    ckpt = None if checkpoint_dir is None else Path(checkpoint_dir)
    opts = _Options(steps, log_every, eval_every, checkpoint_every, ckpt, divergence_factor)
    opts.validate()
    loop = _Loop(model, loader, loss_fn, optimizer, opts, schedule or Constant(), evaluate,
                 probes, sink or NullSink())
    resumed_from = loop.resume()
    start = resumed_from or 0
    loop.progress = Progress(progress, steps, start, desc)
    try:
        status, bad = loop.run(start)
    finally:
        loop.progress.close()
    loop.sink.flush()
    if ckpt is not None:
        remove_checkpoints(ckpt)
    steps_run = max(loop.guard.start - start, 0)  # the guard has seen every update
    return TrainResult(status, bad, resumed_from, steps_run, dict(loop.final))
