"""The one harness every recipe's runs go through.

:func:`run_spec` is the sweep's ``run_fn`` for every recipe: it rebuilds the run's typed
config from the stored one, seeds Python, numpy and torch and fixes the thread count,
resolves the device, records device, dtype and threads in the run's provenance, calls the
recipe's ``build(cfg, env)`` and then either trains (:class:`Training`, through
:class:`bnlab.train.TrainRun` with the run's checkpoint directory, sink, progress bar and
``--compile`` mode) or measures (:class:`Measure`, for recipes that take no optimizer
steps). :func:`start_spec` does the same up to a started run, for the packed executor.
A recipe therefore never touches seeding, devices, provenance, checkpoints or the store.

Example (inside a recipe module):
    >>> def build(cfg: MyConfig, env: RunEnv) -> Training:     # doctest: +SKIP
    ...     x, y = env.load("train")
    ...     model = env.place(create_model("mlp", norm=cfg.norm, in_shape=x.shape[1:],
    ...                                    num_classes=10))
    ...     return Training(model, Loader(x, y, cfg.batch_size, seed=env.seed),
    ...                     nn.functional.cross_entropy,
    ...                     build_optimizer(SGD(lr=cfg.lr), model.parameters()),
    ...                     steps=cfg.steps)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from bnlab.data import load
from bnlab.errors import UserError
from bnlab.experiments.recipe import get_recipe
from bnlab.names import DEVICES
from bnlab.probes.base import Probe
from bnlab.sweep import RunContext, RunSpec
from bnlab.train import seed_everything
from bnlab.train.loop import BatchSource, Evaluate, LossFn, TrainResult, TrainRun
from bnlab.train.schedules import Schedule

__all__ = ["DEVICES", "Measure", "RunEnv", "Training", "resolve_device", "run_spec", "start_spec"]

LogFn = Callable[[int, str, Any], None]


def resolve_device(name: str) -> str:
    """``"auto"`` → ``"cuda"`` when a GPU is visible, else ``"cpu"``; check the others.

    Raises:
        UserError: for an unknown name, or ``"cuda"`` on a machine without a GPU.
    """
    if name not in DEVICES:
        raise UserError(f"unknown --device {name!r}; valid: {', '.join(DEVICES)}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda, but torch sees no CUDA device here; use --device cpu "
                        "or auto, or install a CUDA build of torch")
    return name


@dataclass(frozen=True)
class RunEnv:
    """What a recipe's ``build`` may know about the run besides its config.

    Attributes:
        seed: the run's seed (already applied to every global RNG).
        scale: ``"smoke"``, ``"quick"`` or ``"paper"`` (a label: presets hold the sizes).
        data: ``"paper"``, ``"mnist1d"`` or ``"none"`` (a recipe that needs no dataset).
        dataset: the dataset ``--data paper`` loads (the card's), or ``None``.
        device: where data, model and probes live.
    """

    seed: int
    scale: str
    data: str
    dataset: str | None
    device: torch.device

    @property
    def dataset_name(self) -> str:
        """The :func:`bnlab.data.load` name of this run's data (``mnist1d`` unless paper)."""
        if self.dataset is None:
            raise UserError("this recipe declares no dataset (its card's dataset is None)")
        return self.dataset if self.data == "paper" else "mnist1d"

    def load(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """One split of the run's data as tensors on :attr:`device`."""
        x, y = load(self.dataset_name, split)
        return x.to(self.device), y.to(self.device)

    def place(self, model: nn.Module) -> nn.Module:
        """``model`` moved to :attr:`device` (parameters keep their identity)."""
        return model.to(self.device)

    def generator(self, tag: int) -> torch.Generator:
        """A CPU generator seeded by ``(seed, tag)``: picks (units, probe inputs) per seed.

        The same ``tag`` gives the same stream for every condition of one seed, so BN and
        no-BN runs measure the same units on the same inputs.
        """
        return torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, tag])
                                                 .generate_state(1)[0]))


@dataclass
class Training:
    """A run that trains: everything :func:`bnlab.train.train` needs from the recipe.

    Checkpoints, the sink and the progress bar come from the harness.
    """

    model: nn.Module
    loader: BatchSource
    loss: LossFn
    optimizer: torch.optim.Optimizer
    steps: int
    evaluate: Evaluate | None = None
    eval_every: int = 0
    probes: Sequence[Probe] = ()
    schedule: Schedule | None = None
    log_every: int = 100
    checkpoint_every: int = 0
    divergence_factor: float | None = 100.0


@dataclass
class Measure:
    """A run that only measures (at initialization, or a closed-form experiment).

    Attributes:
        run: ``run(log)``, where ``log(step, name, value)`` stores a float metric or a
            numpy array (by the value's type). A measure-only run restarts from scratch
            when interrupted.
    """

    run: Callable[[LogFn], None]
    notes: dict[str, Any] = field(default_factory=dict)


def _provenance(ctx: RunContext, device: torch.device) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    ctx.add_provenance(device=str(device), device_name=name, threads=torch.get_num_threads(),
                       dtype=str(torch.get_default_dtype()).removeprefix("torch."),
                       torch=torch.__version__)


def _measure(job: Measure, ctx: RunContext) -> dict[str, Any]:
    def log(step: int, name: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy() if value.numel() != 1 else value.item()
        if isinstance(value, np.ndarray):
            ctx.log_array(step, name, value)
        else:
            ctx.log_metrics(step, {name: float(value)})

    job.run(log)
    return {"status": "finished", "first_bad_step": None, "steps_run": 0}


def start_spec(spec: RunSpec, ctx: RunContext) -> TrainRun | dict[str, Any]:
    """Build one run of any registered recipe and start it, without training it.

    Seeds, threads, device, provenance and ``build`` as :func:`run_spec`; a training job
    comes back as a started :class:`~bnlab.train.loop.TrainRun` (resumed from the run's
    checkpoint, if any) that the caller advances; a measure-only job runs at once and its
    outcome comes back. ``run_spec`` drives the run to its end; the packed executor
    (:mod:`bnlab.sweep.packed`) interleaves several.
    """
    recipe = get_recipe(spec.recipe)
    cfg = recipe.config_of(spec.config)
    device = torch.device(resolve_device(spec.execution.get("device", "cpu")))
    compile_mode = spec.execution.get("compile", "none")
    seed_everything(spec.seed, threads=cfg.threads)
    env = RunEnv(spec.seed, spec.config["scale"], spec.config["data"], recipe.card.dataset,
                 device)
    _provenance(ctx, device)
    if compile_mode != "none":
        ctx.add_provenance(compile=compile_mode)
    job = recipe.build(cfg, env)
    if spec.config.get("ddp"):  # --ddp under torchrun: bnlab.experiments.ddp
        from bnlab.experiments.ddp import distribute

        job = distribute(job, spec.config["ddp"], env)
    if isinstance(job, Measure):
        return _measure(job, ctx)
    if not isinstance(job, Training):
        raise TypeError(f"{recipe.name}: build returned {type(job).__name__}, "
                        "expected Training or Measure")
    return TrainRun(
        env.place(job.model), job.loader, job.loss, job.optimizer, steps=job.steps,
        schedule=job.schedule, evaluate=job.evaluate, eval_every=job.eval_every,
        probes=job.probes, sink=ctx, log_every=job.log_every,
        checkpoint_dir=ctx.checkpoint_dir, checkpoint_every=job.checkpoint_every,
        divergence_factor=job.divergence_factor, progress=ctx.progress,
        desc=recipe.describe_run(spec.config, spec.seed), compile=compile_mode,
    ).start()


def run_spec(spec: RunSpec, ctx: RunContext) -> TrainResult | dict[str, Any]:
    """Perform one run of any registered recipe (the sweep's ``run_fn``).

    ``run_spec.start`` is :func:`start_spec`: the packed executor finds it there.
    """
    run = start_spec(spec, ctx)
    return run.run() if isinstance(run, TrainRun) else run


run_spec.start = start_spec  # type: ignore[attr-defined]
