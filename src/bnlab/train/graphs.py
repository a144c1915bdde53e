"""Training steps replayed as CUDA graphs (``train(..., compile="graphs")``).

Why: a full-width VGG-16 step on CIFAR shapes (batch 128) is launch-bound on a modern GPU:
issue 15 measured 7.3 ms per eager step against 3.8 ms with forward, backward and SGD
captured in one CUDA graph (NVIDIA H200, same process). A graph replays every kernel of
the step with one launch from the host.

How (:class:`GraphSteps`, used by the loop for every update that no probe watches):

* :class:`StaticStep` is the step itself: the batch is copied into static input buffers,
  then ``body()`` runs forward, backward and ``optimizer.step()`` on them and returns the
  loss, which stays on the device (the loop's divergence guard keeps a copy per update and
  reads them once per log interval). Called directly, it is the loop's eager update
  without probes, bit for bit; that is how the CPU tests check it.
* Warm-up: the first ``warmup`` updates run eagerly on the capture stream (cuDNN and cuBLAS
  set up their workspaces, SGD creates its momentum buffers). They are real updates.
* Learning rate: ``torch.optim`` reads the LR as a Python float, which a capture freezes
  into the graph. Graphs are therefore kept per value of the optimizer's hyperparameters
  (at most ``max_graphs``, least recently used dropped). An update whose hyperparameters
  differ from the previous update's runs eagerly; the graph is captured when the same
  values come twice in a row. A piecewise-constant schedule (``Constant``, ``Step``,
  ``Plateau``, the constant part after a warm-up) pays one eager update per change; a
  schedule that moves the LR every update (``Cosine``, ``Exponential``, a warm-up ramp)
  runs eagerly while it does (the summary counts it, see :attr:`GraphSteps.counts`).
* Random numbers: ``torch.cuda.graph`` registers the default CUDA generator (dropout);
  every module with its own noise generator (``noise_generator()``, bnlab's ``noisy_bn``
  and ``noise``) has it registered too, so each replay draws fresh numbers and the
  generators' states (checkpoints, ``noise_state()``) advance as in eager mode.
* Outside the graph: probes (a due probe makes that update eager), evaluation, the
  divergence guard's read, checkpoints and the data loader.

Refused with a :class:`~bnlab.errors.UserError` (:func:`check_capturable`): a model that is
not on CUDA; norms with ``momentum=None`` (their cumulative average reads
``num_batches_tracked`` on the host every step); a module with ``noise_state()`` but no
``noise_generator()`` to register; an optimizer other than SGD unless its param groups are
``capturable`` (Adam's step count lives on the host otherwise).

Example:
    >>> result = train(model, loader, loss_fn, opt, steps=15_000,  # doctest: +SKIP
    ...                compile="graphs")
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import nn

from bnlab.errors import UserError
from bnlab.names import COMPILE_MODES

__all__ = ["COMPILE_MODES", "GraphSteps", "StaticStep", "check_capturable"]

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _device_of(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    return torch.device("cpu")


def _uncapturable_modules(model: nn.Module) -> list[str]:
    """Names of the modules a capture cannot hold, each with the reason."""
    found = []
    for name, m in model.named_modules():
        if getattr(m, "momentum", 0.1) is None and getattr(m, "track_running_stats", False):
            found.append(f"{name or 'the model'} ({type(m).__name__} with momentum=None: its "
                         "cumulative average reads num_batches_tracked on the host)")
        if callable(getattr(m, "noise_state", None)) and not callable(
                getattr(m, "noise_generator", None)):
            found.append(f"{name or 'the model'} ({type(m).__name__} has noise_state() but no "
                         "noise_generator() to register with the graph)")
    return found


def check_capturable(model: nn.Module, optimizer: torch.optim.Optimizer,
                     *, need_cuda: bool = True) -> None:  # fmt: skip
    """Raise a :class:`UserError` naming what stops ``model``'s step from being captured.

    Args:
        model: the network (its parameters' device decides).
        optimizer: the run's optimizer.
        need_cuda: require the model on a CUDA device (``False`` for the eager twin).

    Raises:
        UserError: not on CUDA; a ``momentum=None`` norm; a noise module without a
            generator; an optimizer with host-side state.
    """
    device = _device_of(model)
    if need_cuda and device.type != "cuda":
        raise UserError(f"--compile graphs needs a CUDA device, but the model is on {device}; "
                        "run with --device cuda on a GPU machine, or drop --compile")
    bad = _uncapturable_modules(model)
    if bad:
        raise UserError(f"--compile graphs cannot capture {bad[0]}"
                        + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
                        + "; give the norm a momentum, or drop --compile")  # fmt: skip
    capturable = all(g.get("capturable", False) for g in optimizer.param_groups)
    if not isinstance(optimizer, torch.optim.SGD) and not capturable:
        raise UserError(f"--compile graphs supports SGD, or an optimizer built with "
                        f"capturable=True; got {type(optimizer).__name__}; drop --compile")


class StaticStep:
    """The training step on static input buffers: what a CUDA graph captures.

    Args:
        model: the network (train mode is the caller's business).
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar``.
        optimizer: stepped inside :meth:`body`.
        batch: an example batch: the buffers take its shapes, dtypes, strides and device.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer,
                 batch: Batch) -> None:  # fmt: skip
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        inputs, targets = batch
        self.inputs = torch.empty_like(inputs)  # (N, ...) static: a graph reads this memory
        self.targets = torch.empty_like(targets)

    def fits(self, batch: Batch) -> bool:
        """Whether ``batch`` has the buffers' shapes and dtypes (else: an eager update)."""
        inputs, targets = batch
        return (inputs.shape == self.inputs.shape and targets.shape == self.targets.shape
                and inputs.dtype == self.inputs.dtype and targets.dtype == self.targets.dtype)

    def load(self, batch: Batch) -> None:
        """Copy ``batch`` into the static buffers (device to device: no host sync)."""
        self.inputs.copy_(batch[0], non_blocking=True)
        self.targets.copy_(batch[1], non_blocking=True)

    def body(self) -> torch.Tensor:
        """Forward, backward and optimizer step on the buffers; the detached loss (0-d).

        The gradients must be ``None`` on entry (as after ``zero_grad(set_to_none=True)``),
        so backward writes fresh ones: in a graph, into the graph's own memory.
        """
        loss = self.loss_fn(self.model(self.inputs), self.targets)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def eager(self) -> torch.Tensor:
        """One update outside any graph: zero the gradients, then :meth:`body`."""
        self.optimizer.zero_grad(set_to_none=True)
        return self.body()


class GraphSteps:
    """Updates replayed from CUDA graphs, captured per optimizer hyperparameter values.

    ``steps(batch) -> loss`` performs one update (see the module docstring for when it is
    eager, captured or replayed) and returns the detached loss as a fresh tensor.

    Args:
        model: the network, on CUDA when ``capture`` is true.
        loss_fn: the run's loss.
        optimizer: the run's optimizer (SGD, or one with ``capturable=True``).
        capture: ``False`` runs the same bookkeeping with every would-be replay executed
            eagerly by :meth:`StaticStep.eager` (the CPU twin used by the tests).
        warmup: eager updates on the capture stream before the first capture.
        max_graphs: graphs kept at once (each holds the step's activations).

    Attributes:
        counts: ``{"warmup", "eager", "captures", "replays"}``: updates of each kind.

    Raises:
        UserError: from :func:`check_capturable`.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer,
                 *, capture: bool = True, warmup: int = 3,
                 max_graphs: int = 4) -> None:  # fmt: skip
        check_capturable(model, optimizer, need_cuda=capture)
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.capture, self.warmup, self.max_graphs = capture, warmup, max(1, max_graphs)
        self.static: StaticStep | None = None
        self.graphs: OrderedDict[Hashable, tuple[Any, torch.Tensor | None]] = OrderedDict()
        self.last_key: Hashable | None = None
        self.stream = torch.cuda.Stream(_device_of(model)) if capture else None
        self.counts = {"warmup": 0, "eager": 0, "captures": 0, "replays": 0}

    def __call__(self, batch: Batch) -> torch.Tensor:
        """Perform one update on ``batch``; return its loss (detached, on the device)."""
        if self.static is None:
            self.static = StaticStep(self.model, self.loss_fn, self.optimizer, batch)
        static = self.static
        if not static.fits(batch):  # a short last batch: no graph for one odd shape
            self.counts["eager"] += 1
            return _plain_update(self.model, self.loss_fn, self.optimizer, batch)
        static.load(batch)
        if self.counts["warmup"] < self.warmup:
            self.counts["warmup"] += 1
            return self._on_capture_stream(static.eager)
        key = self._key()
        if key not in self.graphs:
            if key != self.last_key:  # the hyperparameters just changed: wait until they hold
                self.last_key = key
                self.counts["eager"] += 1
                return static.eager()
            self._capture(key)
        self.last_key = key
        self.graphs.move_to_end(key)
        return self._replay(key)

    def _key(self) -> Hashable:
        """The optimizer's hyperparameters (what a capture freezes), hashable."""
        return tuple(
            tuple((k, _hashable(v)) for k, v in group.items() if k != "params")
            for group in self.optimizer.param_groups
        )

    def _on_capture_stream(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Run ``fn`` on the capture stream (CUDA's rule for warm-up), then join it."""
        if self.stream is None:
            return fn()
        here = torch.cuda.current_stream()
        self.stream.wait_stream(here)
        with torch.cuda.stream(self.stream):
            out = fn()
        here.wait_stream(self.stream)
        out.record_stream(here)  # read on this stream later (the guard)
        return out

    def _capture(self, key: Hashable) -> None:
        """Record one update for ``key``'s hyperparameters (nothing runs while recording)."""
        static = self.static
        assert static is not None  # set by __call__
        while len(self.graphs) >= self.max_graphs:
            self.graphs.popitem(last=False)
        self.counts["captures"] += 1
        if not self.capture:
            self.graphs[key] = (static.eager, None)
            return
        self.optimizer.zero_grad(set_to_none=True)  # backward allocates grads in the graph
        graph = torch.cuda.CUDAGraph()
        with warnings.catch_warnings():  # newer torch registers lazily, deprecating this
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            for gen in _noise_generators(self.model):
                if gen.device.type == "cuda":
                    graph.register_generator_state(gen)
        with torch.cuda.graph(graph, stream=self.stream):
            loss = static.body()
        self.graphs[key] = (graph, loss)

    def _replay(self, key: Hashable) -> torch.Tensor:
        self.counts["replays"] += 1
        graph, loss = self.graphs[key]
        if loss is None:  # the eager twin
            return graph()
        graph.replay()
        return loss.clone()  # the graph overwrites its loss on the next replay


def _hashable(value: Any) -> Hashable:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, torch.Tensor):
        return ("tensor", id(value))  # a tensor hyperparameter is read on the device
    return value  # type: ignore[no-any-return]


def _noise_generators(model: nn.Module) -> list[torch.Generator]:
    return [m.noise_generator() for m in model.modules()
            if callable(getattr(m, "noise_generator", None))]  # fmt: skip


def _plain_update(model: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer,
                  batch: Batch) -> torch.Tensor:  # fmt: skip
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(batch[0]), batch[1])
    loss.backward()
    optimizer.step()
    return loss.detach()

