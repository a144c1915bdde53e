"""One run across processes: ``bnlab run ... --ddp`` under ``torchrun`` (DESIGN.md, "Scale-out").

``torchrun --nproc-per-node N -m bnlab run RECIPE --ddp [--bn-sync global|local]`` trains
each run of the grid with :class:`~torch.nn.parallel.DistributedDataParallel` on N
processes (one per GPU; ``gloo`` on CPUs, ``nccl`` on GPUs). Every rank builds the same
model, loader and probes from the same seed; what differs:

* **Data**: each rank trains on its slice of the same seeded global batch (rank r takes
  samples ``[r·b, (r+1)·b)``, b = B / N), so the run sees the batches a single process
  would, whatever N. N must divide the batch.
* **Batch norm** (``--bn-sync``, stored in the run's config under ``ddp``, so it is part of
  the run key; runs without ``--ddp`` keep their keys):

  - ``global`` (default): statistics over the global batch, the single-process maths.
    ``bn``, ``bn_reference`` and torch's ``BatchNorm*`` become
    :class:`torch.nn.SyncBatchNorm` on GPUs; on CPUs, where SyncBatchNorm has no kernel,
    a BN whose per-channel sums go through a differentiable all-reduce
    (:class:`GlobalBatchNorm`). ``ghost_bn`` is kept when its virtual batches fall inside
    one rank's slice (its maths needs no exchange). Norms without batch statistics
    (``ln``, ``gn``, ``none``) need nothing. The others are refused with the reason.
  - ``local``: each rank normalizes its slice with its own statistics (ghost BN with the
    per-rank batch as virtual batch, Hoffer et al. 2017); the running statistics are
    averaged over the ranks after every training forward, as ``ghost_bn`` averages its
    virtual batches'. The per-rank batch changes the maths, so the world size is stored
    too.

  Norms that draw per-element noise (``noisy_bn``, ``noise``) are refused: every rank
  would draw the same noise for its slice.
* **Store and checkpoints**: only rank 0 writes the store and checkpoints; the other ranks
  read rank 0's checkpoint when a run resumes, so a run resumes on any world size that
  divides its batch (with ``global``; ``local`` keys the world size).
* **Logged values**: ``train_loss`` is the global batch's mean (all-reduced); evaluation
  runs on rank 0 and its result is broadcast (a plateau schedule sees the same value on
  every rank).
* **Probes** measure the global batch: at a due step the ranks gather their slices, and
  rank 0 runs the probe on the unwrapped model with the single-process maths (SyncBatchNorm
  without the exchange, or, for ``local``, each norm applied slice by slice), so every
  probe means what it means in a single process. A probe class that sets
  ``ddp_correct = False`` is refused instead of being measured per rank.
* A run that fails stops the sweep (the ranks cannot go on together after one raised).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from bnlab.errors import UserError
from bnlab.experiments.harness import Measure, RunEnv, Training
from bnlab.layers import BatchNorm, BatchNormReference, GhostBatchNorm, NormBase
from bnlab.layers.functional import reduce_dims
from bnlab.probes.base import Probe, ProbeContext
from bnlab.sweep import RunSpec, SweepSummary, execute

__all__ = [
    "BN_SYNC",
    "GlobalBatchNorm",
    "ddp_specs",
    "distribute",
    "init_from_env",
    "run_ddp_sweep",
    "shutdown",
]

#: Values of ``--bn-sync``.
BN_SYNC: tuple[str, ...] = ("global", "local")
_TORCHRUN = ("--ddp runs under torchrun, e.g. `torchrun --nproc-per-node 2 -m bnlab run "
             "RECIPE --ddp`")


# -- setup and the run grid -------------------------------------------------------------


def init_from_env(device: str) -> tuple[int, int]:
    """Join the process group torchrun describes; return ``(rank, world_size)``.

    ``gloo`` on CPUs, ``nccl`` on GPUs (each rank on the GPU ``LOCAL_RANK``).

    Raises:
        UserError: outside torchrun (no ``RANK``/``WORLD_SIZE`` in the environment).
    """
    if not {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"} <= os.environ.keys():
        raise UserError(_TORCHRUN)
    if not dist.is_initialized():
        if device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def shutdown(abort: bool = False) -> None:
    """Leave the process group: after a barrier, or at once (``abort``: a run failed)."""
    if dist.is_initialized():
        if not abort:
            dist.barrier()
        dist.destroy_process_group()


def ddp_options(bn_sync: str, world_size: int) -> dict[str, Any]:
    """The ``ddp`` entry of a run's stored config (part of its key).

    Raises:
        UserError: for an unknown ``bn_sync``.
    """
    if bn_sync not in BN_SYNC:
        raise UserError(f"unknown --bn-sync {bn_sync!r}; valid: {', '.join(BN_SYNC)}")
    # local statistics depend on the per-rank batch, hence on the world size
    return {"bn_sync": bn_sync, **({"world_size": world_size} if bn_sync == "local" else {})}


def ddp_specs(specs: Sequence[RunSpec], bn_sync: str, world_size: int) -> list[RunSpec]:
    """``specs`` with the DDP choice added to each run's config (and so to its key)."""
    entry = ddp_options(bn_sync, world_size)
    return [RunSpec(s.recipe, {**s.config, "ddp": entry}, s.seed, execution=dict(s.execution))
            for s in specs]


# -- the sweep: rank 0 leads, the others follow -----------------------------------------


def _tell(message: Any = None) -> Any:
    """Rank 0 sends ``message`` to every rank; every rank returns it."""
    box = [message]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class _PeerContext:
    """The run context of a rank other than 0: discards rows, reads rank 0's checkpoint."""

    def __init__(self, key: str, checkpoint_dir: Path, resumed_from: int | None) -> None:
        self.run_id, self.key, self.progress = -1, key, False
        self.checkpoint_dir, self.resumed_from = checkpoint_dir, resumed_from

    def add_provenance(self, **fields: Any) -> None:
        """Only rank 0 records provenance."""

    def log_metrics(self, step: int, values: Mapping[str, Any]) -> None:
        """Only rank 0 writes the store."""

    def log_array(self, step: int, name: str, array: Any) -> None:
        """Only rank 0 writes the store."""

    def flush(self) -> None:
        """Nothing is buffered."""


@contextmanager
def _peer_context(key: str, leader_dir: str, resumed_from: int | None) -> Iterator[_PeerContext]:
    """A private checkpoint folder that shows rank 0's latest checkpoint, if it resumes."""
    with tempfile.TemporaryDirectory(prefix="bnlab-ddp-") as tmp:
        if resumed_from is not None:
            latest = Path(leader_dir) / "latest.json"
            name = json.loads(latest.read_text())["file"]
            (Path(tmp) / name).symlink_to(Path(leader_dir).resolve() / name)
            (Path(tmp) / "latest.json").write_text(latest.read_text())
        yield _PeerContext(key, Path(tmp), resumed_from)


def _merge(summaries: list[SweepSummary]) -> SweepSummary:
    """One summary for the one-run sweeps of a DDP sweep (counts added, lists joined)."""
    total = SweepSummary()
    for s in summaries:
        for f in dataclasses.fields(s):
            mine, theirs = getattr(total, f.name), getattr(s, f.name)
            if isinstance(mine, dict):
                for k, v in theirs.items():
                    mine[k] = mine.get(k, 0) + v
            else:
                setattr(total, f.name, mine + theirs)
    return total


def run_ddp_sweep(specs: Sequence[RunSpec], out: Path, run_fn: Callable[..., Any],
                  **execute_kw: Any) -> SweepSummary:
    """Execute ``specs`` one after the other on every rank; rank 0 owns the store.

    Rank 0 runs each spec through :func:`bnlab.sweep.execute` (skip, resume, store) and
    tells the others whether and from which checkpoint it runs; they run it with a
    context that stores nothing. The sweep stops at the first failed run (the summary
    lists it; the caller then leaves the group without a barrier). An exception (Ctrl-C,
    a store failure) leaves at once: the other ranks' next collective fails.

    Returns:
        The sweep's summary on rank 0. On the other ranks an empty one, or one whose
        ``failures`` say that rank 0 left the group (after a failed run).
    """
    if dist.get_rank() != 0:
        if _follow(specs, run_fn):
            return SweepSummary()
        why = "rank 0 left the group: a run failed (see `bnlab status`)"
        print(f"rank {dist.get_rank()}: {why}", file=sys.stderr)
        return SweepSummary(failures=[("", why)])
    summaries, world = [], dist.get_world_size()
    for spec in specs:
        told = []

        def lead(s: RunSpec, ctx: Any, told: list = told) -> Any:
            told.append(_tell(("run", s.key, str(ctx.checkpoint_dir), ctx.resumed_from)))
            ctx.add_provenance(ddp_world_size=world, ddp_backend=dist.get_backend())
            return run_fn(s, ctx)

        summaries.append(execute([spec], out, lead, executor="serial", **execute_kw))
        if summaries[-1].failures:
            # Another rank may still wait inside a collective of the failed run: tell them
            # nothing; leaving the group (shutdown(abort=True)) ends their wait with an error.
            return _merge(summaries)
        if not told:
            _tell(("skip", spec.key))
    _tell(("stop", None))
    return _merge(summaries)


def _follow(specs: Sequence[RunSpec], run_fn: Callable[..., Any]) -> bool:
    """The loop of a rank other than 0: run what rank 0 runs, until it says stop.

    Returns ``True`` when rank 0 said stop, ``False`` when it left the group.
    """
    by_key = {s.key: s for s in specs}
    while True:
        try:
            message = _tell()
        except RuntimeError:  # gloo/nccl: the connection to rank 0 closed
            return False
        if message[0] == "stop":
            return True
        if message[0] == "skip":
            continue
        _, key, leader_dir, resumed_from = message
        with _peer_context(key, leader_dir, resumed_from) as ctx:
            try:
                run_fn(by_key[key], ctx)
            except Exception:  # rank 0 stores the failure and stops the sweep
                print(f"rank {dist.get_rank()}: run {key[:8]} failed:\n"
                      f"{traceback.format_exc()}", file=sys.stderr)


# -- norms --------------------------------------------------------------------------------


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of a sum is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx: Any, t: Tensor) -> Tensor:
        out = t.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return _AllReduceSum.apply(grad)


class GlobalBatchNorm(NormBase):
    r"""BN over the global batch of all ranks, for devices without SyncBatchNorm (CPUs).

    Per channel, :math:`\mu = \sum_r S_r / n` and :math:`\sigma^2 = \sum_r Q_r / n` with
    :math:`S_r` the rank's sum, :math:`Q_r` its sum of squared deviations from
    :math:`\mu` and :math:`n` the global count, each sum all-reduced differentiably, so the
    backward is that of BN on the global batch. ``running_var`` gets the unbiased
    :math:`\sigma^2 n/(n-1)`. With :attr:`exchange` off (rank 0 measuring alone) it is
    plain BN. Built from an existing BN by :meth:`like`, sharing its tensors.
    """

    exchange: bool = True

    @classmethod
    def like(cls, norm: nn.Module) -> GlobalBatchNorm:
        """A :class:`GlobalBatchNorm` with the parameters and buffers of ``norm`` (shared)."""
        new = cls(norm.num_features, eps=norm.eps, momentum=norm.momentum, affine=norm.affine,
                  track_running_stats=norm.track_running_stats)
        _share_tensors(norm, new)
        return new

    def _normalize(self, x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                   batch_stats: bool, momentum: float) -> Tensor:
        if not (batch_stats and self.exchange):
            return F.batch_norm(x, running_mean, running_var, self.weight, self.bias,
                                batch_stats, momentum, self.eps)
        dims, shape = reduce_dims(x), (1, -1, *([1] * (x.dim() - 2)))
        n = x.numel() // x.shape[1] * dist.get_world_size()  # equal slices
        mean = _AllReduceSum.apply(x.sum(dims)) / n  # (N, C, *) -> (C,)
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply(centred.square().sum(dims)) / n  # biased, (C,)
        if running_mean is not None and running_var is not None and momentum > 0:
            with torch.no_grad():
                running_mean.lerp_(mean.detach(), momentum)
                running_var.lerp_(var.detach() * n / max(n - 1, 1), momentum)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        return y if self.weight is None else y * self.weight.view(shape) + self.bias.view(shape)


def _share_tensors(old: nn.Module, new: nn.Module) -> None:
    """Point ``new``'s parameters and buffers at ``old``'s (an optimizer keeps working)."""
    for name in ("weight", "bias"):
        setattr(new, name, getattr(old, name))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        setattr(new, name, getattr(old, name))
    new.train(old.training)


def _sync_bn(norm: nn.Module) -> nn.Module:
    """``torch.nn.SyncBatchNorm`` sharing ``norm``'s tensors (GPUs)."""
    new = nn.SyncBatchNorm(norm.num_features, eps=norm.eps, momentum=norm.momentum,
                           affine=norm.affine, track_running_stats=norm.track_running_stats)
    _share_tensors(norm, new)
    return new


def _norm_name(module: nn.Module) -> str:
    from bnlab.layers.registry import NORMS

    for name in NORMS.names():
        if type(module) is NORMS.get(name):
            return name
    return type(module).__name__


def _plain_bn(module: nn.Module) -> bool:
    """Whether ``module`` is bnlab's ``bn``/``bn_reference`` or a torch BatchNorm."""
    return type(module) in (BatchNorm, BatchNormReference) or isinstance(module, _BatchNorm)


def _has_batch_stats(module: nn.Module) -> bool:
    if isinstance(module, NormBase):
        return module.uses_batch_stats
    return isinstance(module, _BatchNorm)


def _refuse(module: nn.Module, name: str, why: str) -> UserError:
    return UserError(f"--ddp: norm {_norm_name(module)!r} (at {name or 'the model'}) {why}")


def _check_norms(model: nn.Module, bn_sync: str, per_rank: int) -> None:
    """Refuse the norms whose maths DDP cannot keep (the message names the norm)."""
    for name, m in model.named_modules():
        if callable(getattr(m, "noise_state", None)):
            raise _refuse(m, name, "draws per-element noise from one generator per layer: "
                          "every rank would draw the same noise for its slice; run it "
                          "without --ddp")
        if bn_sync != "global" or not _has_batch_stats(m) or _plain_bn(m):
            continue
        if isinstance(m, GhostBatchNorm):
            if per_rank % m.virtual_batch_size:
                raise _refuse(m, name, f"with virtual batches of {m.virtual_batch_size} cannot "
                              f"split a per-rank batch of {per_rank}: its virtual batches "
                              "would straddle ranks; choose a world size whose per-rank "
                              "batch is a multiple, or --bn-sync local")
            continue
        raise _refuse(m, name, "has no global-statistics form here (its statistics are not "
                      "plain per-channel sums over the batch); use --bn-sync local (per-rank "
                      "statistics) or run without --ddp")


def _convert_global(model: nn.Module, device: torch.device) -> list[nn.Module]:
    """Replace every plain BN by its global-statistics twin; return the new modules."""
    make = _sync_bn if device.type == "cuda" else GlobalBatchNorm.like
    converted = []
    for name, m in list(model.named_modules()):
        if name and _plain_bn(m) and not isinstance(m, GlobalBatchNorm | nn.SyncBatchNorm):
            parent, _, child = name.rpartition(".")
            new = make(m)
            setattr(model.get_submodule(parent) if parent else model, child, new)
            converted.append(new)
    return converted


# -- running statistics of per-rank norms -----------------------------------------------


class _Averager:
    """Averages the running statistics of per-rank norms after each training forward.

    Running averages are linear in the batch statistics, so the mean of the ranks'
    updates is the update of ``ghost_bn`` over the ranks' slices as virtual batches.
    """

    def __init__(self, modules: list[nn.Module]) -> None:
        self.enabled = True
        self.handles = [m.register_forward_hook(self._hook) for m in modules]

    def _hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if not (self.enabled and module.training) or module.running_mean is None:
            return
        with torch.no_grad():
            both = torch.cat([module.running_mean, module.running_var])
            dist.all_reduce(both)
            both /= dist.get_world_size()
            # through .data: autograd saved the buffers (CPU batch_norm's backward takes
            # them, unused in training), and a version bump would fail that backward
            module.running_mean.data.copy_(both[: module.num_features])
            module.running_var.data.copy_(both[module.num_features:])


# -- the single-process view rank 0 measures through --------------------------------------


class _View:
    """The model as one process would see it, for probes on the gathered global batch."""

    def __init__(self, module: nn.Module, world: int, local: list[nn.Module],
                 averager: _Averager, solo: Any) -> None:
        self.module, self.world, self.local = module, world, local
        self.averager, self.solo = averager, solo

    @contextmanager
    def single_process(self) -> Iterator[nn.Module]:
        """No exchange inside: SyncBN alone, GlobalBatchNorm plain, local norms by slice."""
        with ExitStack() as stack:
            self.averager.enabled = False
            stack.callback(setattr, self.averager, "enabled", True)
            for m in self.module.modules():
                if isinstance(m, nn.SyncBatchNorm):
                    stack.callback(setattr, m, "process_group", m.process_group)
                    m.process_group = self.solo
                elif isinstance(m, GlobalBatchNorm):
                    m.exchange = False
                    stack.callback(setattr, m, "exchange", True)
            for m in self.local:
                stack.enter_context(_by_slice(m, self.world))
            yield self.module


@contextmanager
def _by_slice(module: nn.Module, world: int) -> Iterator[None]:
    """Make ``module`` normalize a global batch slice by slice, as the ranks do.

    In training mode each slice starts from the same running statistics and the results
    are averaged, as :class:`_Averager` does across ranks.
    """
    forward = module.forward

    def sliced(x: Tensor) -> Tensor:
        if not module.training:
            return forward(x)
        if getattr(module, "running_mean", None) is None:
            return torch.cat([forward(c) for c in x.chunk(world)])
        mean, var = module.running_mean.data, module.running_var.data  # as _Averager
        start, outs, means, vars_ = (mean.clone(), var.clone()), [], [], []
        for c in x.chunk(world):
            mean.copy_(start[0])
            var.copy_(start[1])
            outs.append(forward(c))
            means.append(mean.clone())
            vars_.append(var.clone())
        mean.copy_(torch.stack(means).mean(0))
        var.copy_(torch.stack(vars_).mean(0))
        return torch.cat(outs)

    module.forward = sliced
    try:
        yield
    finally:
        del module.forward  # back to the class's forward


# -- probes, loss, evaluation, data ------------------------------------------------------


def _gather(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """The global batch, slices in rank order (every rank calls this)."""
    out = []
    for t in batch:
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t.contiguous())
        out.append(torch.cat(parts))
    return out[0], out[1]


class _RankZeroProbe(Probe):
    """Runs a probe on rank 0 over the gathered global batch through the single-process view."""

    def __init__(self, probe: Probe, view: _View, loss_fn: Callable[..., Tensor]) -> None:
        super().__init__(probe.schedule, bn_mode=probe.bn_mode)
        self.probe, self.view, self.loss_fn, self.name = probe, view, loss_fn, probe.name

    def due(self, step: int) -> bool:
        """As the wrapped probe."""
        return self.probe.due(step)

    def on_step(self, ctx: ProbeContext) -> None:
        """Gather the batch (all ranks), measure on rank 0."""
        batch = _gather(ctx.batch)
        if dist.get_rank() != 0:
            return
        with self.view.single_process() as model:
            self.probe.on_step(ProbeContext(model, self.loss_fn, batch, ctx.optimizer, ctx.lr,
                                            ctx.step, ctx.log))

    def state_dict(self) -> dict[str, Any]:
        """The wrapped probe's state (rank 0's is the one checkpointed)."""
        return self.probe.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the wrapped probe's state."""
        self.probe.load_state_dict(state)


def _global_loss(loss_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """The rank's loss for backward, carrying the global batch's mean as its value."""

    def loss(outputs: Tensor, targets: Tensor) -> Tensor:
        local = loss_fn(outputs, targets)
        mean = local.detach().clone()
        dist.all_reduce(mean)
        return local + (mean / dist.get_world_size() - local.detach())

    return loss


def _rank_zero_evaluate(evaluate: Callable[[nn.Module], dict], module: nn.Module
                        ) -> Callable[[nn.Module], dict]:
    def run(model: nn.Module) -> dict:
        del model  # the DDP wrapper; rank 0 evaluates the module alone
        result = {k: float(v) for k, v in evaluate(module).items()} if (
            dist.get_rank() == 0) else None
        return _tell(result)

    return run


@dataclass
class _Shard:
    """Rank ``rank``'s slice of every batch of ``loader`` (same batches, same order)."""

    loader: Any
    rank: int
    world: int

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, e: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """The rank's slice of each batch of epoch ``e`` from ``start``."""
        for x, y in self.loader.epoch(e, start):
            if len(x) % self.world:
                raise UserError(f"--ddp: a batch of {len(x)} does not split over "
                                f"{self.world} ranks; use a world size that divides it")
            b = len(x) // self.world
            yield x[self.rank * b:(self.rank + 1) * b], y[self.rank * b:(self.rank + 1) * b]


# -- the harness hook ----------------------------------------------------------------------


def _per_rank_batch(loader: Any, world: int) -> int:
    size = getattr(loader, "batch_size", None)
    if size is None:
        raise UserError(f"--ddp needs a loader with a batch_size, got {type(loader).__name__}")
    if size % world:
        raise UserError(f"--ddp: world size {world} does not divide the batch of {size}; "
                        "use a world size that divides it")
    return size // world


def distribute(job: Training | Measure, options: Mapping[str, Any], env: RunEnv) -> Training:
    """Turn one rank's :class:`Training` into its part of a DDP run (see the module doc).

    Raises:
        UserError: for a measure-only recipe, a world size that does not divide the batch,
            a norm or a probe DDP cannot keep correct (the message names it).
    """
    if not isinstance(job, Training):
        raise UserError("--ddp distributes training; this recipe only measures (no optimizer "
                        "steps): run it without --ddp")
    rank, world = dist.get_rank(), dist.get_world_size()
    bn_sync = options.get("bn_sync", "global")
    per_rank = _per_rank_batch(job.loader, world)
    _check_norms(job.model, bn_sync, per_rank)
    refused = [p for p in job.probes if not getattr(p, "ddp_correct", True)]
    if refused:
        raise UserError(f"--ddp: probe {type(refused[0]).__name__} cannot be measured on the "
                        "global batch (it says so); run without --ddp")
    model = env.place(job.model)
    if bn_sync == "global":
        _convert_global(model, env.device)
    local = [m for m in model.modules() if _has_batch_stats(m) and not isinstance(
        m, GlobalBatchNorm | nn.SyncBatchNorm)]
    averager = _Averager(local)
    solo = dist.new_group([0])  # every rank takes part in creating it
    view = _View(model, world, local, averager, solo)
    wrapped = DistributedDataParallel(
        model, forward_sync_buffers=False,  # norms keep their buffers equal (above)
        device_ids=[torch.cuda.current_device()] if env.device.type == "cuda" else None)
    return dataclasses.replace(
        job, model=wrapped, loader=_Shard(job.loader, rank, world),
        loss=_global_loss(job.loss),
        evaluate=None if job.evaluate is None else _rank_zero_evaluate(job.evaluate, model),
        probes=[_RankZeroProbe(p, view, job.loss) for p in job.probes],
        checkpoint_every=job.checkpoint_every if rank == 0 else 0)
