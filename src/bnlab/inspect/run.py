"""``bnlab.inspect(...)``: run the instrument panel on a user's model and store it.

Per model variant (the model as given, and optionally the same network with its batch
norms swapped for another norm, or a second model) one run of the recipe ``inspect`` is
written to ``<out>/bnlab.db`` through :class:`bnlab.results.Store`, so ``bnlab report
--out <out>`` draws the panel beside the reproductions. A run:

1. checks that the model takes the data (one eval-mode forward and the loss, no trace);
2. finds the norm sites from one traced forward pass (:func:`~bnlab.inspect.panel.find_sites`);
3. times one bare training step of an eager copy (the unit of every probe's cost);
4. trains for ``steps`` updates with :func:`bnlab.train.train`, the panel's probes on
   their schedules (``steps=0``: no update, the probes measure the model as given);
5. measures once more after the last update (the probes whose schedule holds ``steps``).

The variants start from the same weights (the copies are taken before anything trains),
see the same batches (a :class:`bnlab.data.Loader`, or a loader whose order depends on the
global seed, reseeded per variant) and take the same kind of optimizer.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bnlab.errors import UserError
from bnlab.inspect.cost import MakeOptimizer, Timed, bare_step_seconds
from bnlab.inspect.panel import Panel, Sites, build_probes, eager, find_sites
from bnlab.layers.swap import swap_norms
from bnlab.probes import ProbeContext
from bnlab.results import Store, provenance
from bnlab.sweep import RunContext, run_key
from bnlab.train import seed_everything, train

__all__ = ["RECIPE", "InspectResult", "VariantResult", "inspect"]

RECIPE = "inspect"
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class VariantResult:
    """How one variant's run went.

    Attributes:
        label: ``"as given"``, ``"BN→none"`` (its batch norms swapped for ``none``), or the
            name of a second model.
        run_id: its id in the store.
        status: ``"finished"`` or ``"diverged"``.
        first_bad_step: the first step whose loss was non-finite or exploded, else ``None``.
        step_seconds: one bare training step, in seconds.
        cost: probe -> (calls, mean cost per call in training steps).
        notes: probe -> what it skipped or why it was turned off.
    """

    label: str
    run_id: int
    status: str
    first_bad_step: int | None
    step_seconds: float
    cost: dict[str, tuple[int, float]]
    notes: dict[str, list[str]]


@dataclass(frozen=True)
class InspectResult:
    """What :func:`inspect` did: where it stored what, per variant."""

    out: Path
    steps: int
    variants: list[VariantResult] = field(default_factory=list)

    def summary(self, store: Store | None = None) -> str:
        """A plain-text table of each variant's probe costs and headline numbers."""
        own = store is None
        store = Store(self.out) if store is None else store
        try:
            return "\n".join(_summary_lines(self, store))
        finally:
            if own:
                store.close()


def _summary_lines(result: InspectResult, store: Store) -> list[str]:
    lines = []
    for v in result.variants:
        total = sum(n * c for n, c in v.cost.values())
        lines.append(f"{v.label}: run {v.run_id}, {v.status}"
                     + (f" at step {v.first_bad_step}" if v.first_bad_step is not None else "")
                     + f"; one training step {v.step_seconds * 1e3:.1f} ms; "
                     f"panel {total:.1f} steps in all")
        for probe, (calls, per_call) in v.cost.items():
            lines.append(f"  {probe:<14} {calls:>3} calls × {per_call:7.2f} steps")
        lines += [f"  {k}: {value:.4g}" for k, value in _headline(store, v.run_id).items()]
        lines += _skipped_lines((store.run(v.run_id) or {}).get("config", {}).get("skipped", {}))
        for probe, texts in v.notes.items():
            lines += [f"  note ({probe}): {t}" for t in texts]
    return lines


def _skipped_lines(skipped: dict[str, dict[str, str]]) -> list[str]:
    """One line per reason: the probes and the sites it keeps from being measured."""
    by_reason: dict[str, dict[str, list[int]]] = {}
    for probe, sites in skipped.items():
        for site, why in sites.items():
            by_reason.setdefault(why, {}).setdefault(probe, []).append(int(site))
    lines = []
    for why, probes in by_reason.items():
        sites = sorted({i for found in probes.values() for i in found})
        lines.append(f"  not measured by {', '.join(probes)}: site{'s' * (len(sites) > 1)} "
                     f"{', '.join(map(str, sites))}: {why}")
    return lines


def _headline(store: Store, run_id: int) -> dict[str, float]:
    """First and last values of the panel's scalar summaries."""
    df = store.metrics(runs=[run_id])
    out = {}
    for name in ("explosion/mean", "landscape/beta", "hessian/top", "depth/slope", "train_loss",
                 "test_acc"):
        rows = df[df["name"] == name].sort_values("step")
        if len(rows):
            first, last = rows.iloc[0], rows.iloc[-1]
            out[f"{name} at step {int(first.step)}"] = float(first.value)
            if len(rows) > 1:
                out[f"{name} at step {int(last.step)}"] = float(last.value)
    ics = df[df["name"].str.match(r"ics/\d+/l2$")]
    for step in sorted(set(ics["step"]))[:1] + sorted(set(ics["step"]))[-1:]:
        out[f"ICS mean over sites at step {int(step)}"] = float(ics[ics.step == step].value.mean())
    return out


# -- inputs ---------------------------------------------------------------------------------

class _Batches:
    """Any loader as the training loop's batch source, batches moved to the model's device.

    A :class:`bnlab.data.Loader` keeps its reproducible epochs (``epoch(e, start)``); any
    other re-iterable of ``(inputs, targets)`` (a ``torch.utils.data.DataLoader``) is
    iterated once per epoch, ``start`` batches skipped.
    """

    def __init__(self, loader: Any, device: torch.device) -> None:
        try:
            self.length = len(loader)
        except TypeError:
            raise UserError("the loader must have a length (batches per epoch), like a "
                            "DataLoader or bnlab.data.Loader") from None
        if self.length < 1:
            raise UserError("the loader yields no batch; lower the batch size or give more data")
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return self.length

    def epoch(self, e: int, start: int = 0) -> Iterator[Batch]:
        if hasattr(self.loader, "epoch"):
            batches = self.loader.epoch(e, start=start)
        else:
            batches = islice(iter(self.loader), start, None)
        for batch in batches:
            yield self._placed(batch)

    def _placed(self, batch: Any) -> Batch:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2
                and all(isinstance(t, torch.Tensor) for t in batch)):
            raise UserError(f"the loader must yield (inputs, targets) tensor pairs, got a "
                            f"{type(batch).__name__}")
        x, y = batch
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def at(self, step: int) -> Batch:
        """The batch the training loop uses for update ``step``."""
        e, start = divmod(step, self.length)
        batch = next(iter(self.epoch(e, start)), None)
        if batch is None:
            raise UserError(f"the loader yielded no batch at step {step} although its length "
                            f"is {self.length}; check the loader")
        return batch


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]


def check_fits(model: nn.Module, loss_fn: LossFn, batch: Batch) -> None:
    """One eval-mode forward (no autograd, no buffer written) and the loss on ``batch``.

    Raises:
        UserError: naming the input shape when the model cannot take the data, its output
            does not fit the targets, or the loss is not a finite scalar.
    """
    model = eager(model)
    x, y = batch
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            out = _call(lambda: model(x), f"the model cannot take inputs of shape "
                        f"{tuple(x.shape)} ({x.dtype})")
            loss = _call(lambda: loss_fn(out, y), f"the loss cannot compare the model's output "
                         f"{_shape(out)} with targets of shape {tuple(y.shape)} ({y.dtype})")
    finally:
        for m, flag in flags:
            m.training = flag
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise UserError(f"the loss must be a scalar tensor, got {_shape(loss)}")


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


def _call(fn: Callable[[], Any], what: str) -> Any:
    try:
        return fn()
    except (RuntimeError, ValueError, IndexError, TypeError) as err:
        raise UserError(f"{what}: {_first_line(err)}; check the model against the data") from err


def _optimizer_factory(optimizer: Any, model: nn.Module) -> tuple[MakeOptimizer, Any]:
    """A factory of the user's optimizer for any variant, and the one for ``model`` itself.

    ``None`` is SGD (lr 0.05, momentum 0.9); a callable ``params -> Optimizer`` is called per
    variant; an optimizer instance serves ``model`` and is rebuilt from its ``defaults``
    for the other variants and the timing copy.
    """
    if optimizer is None:
        def make(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
            return torch.optim.SGD(params, lr=0.05, momentum=0.9)
        return make, make(model.parameters())
    if isinstance(optimizer, torch.optim.Optimizer):
        own = {id(p) for p in model.parameters()}
        if not all(id(p) in own for g in optimizer.param_groups for p in g["params"]):
            raise UserError("the optimizer holds parameters that are not the model's; build "
                            "it on model.parameters() or pass a factory params -> optimizer")
        cls, defaults = type(optimizer), dict(optimizer.defaults)
        return (lambda params: cls(params, **defaults)), optimizer
    if callable(optimizer):
        return optimizer, optimizer(model.parameters())
    raise UserError(f"optimizer must be None, a torch optimizer or a factory params -> "
                    f"optimizer, got {type(optimizer).__name__}")


def _describe_optimizer(opt: torch.optim.Optimizer) -> dict[str, Any]:
    plain = {k: v for k, v in opt.defaults.items() if isinstance(v, (int, float, str, bool))}
    return {"type": type(opt).__name__, **plain}


# -- variants -------------------------------------------------------------------------------

@dataclass
class _Variant:
    label: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    make_optimizer: MakeOptimizer


def _variants(model: nn.Module, optimizer: Any, compare: str | nn.Module | None,
              compare_label: str | None) -> list[_Variant]:
    """The model as given and its comparison, the copies taken before anything trains."""
    make, own = _optimizer_factory(optimizer, model)
    variants = [_Variant("as given", model, own, make)]
    if compare is None:
        return variants
    if isinstance(compare, str):
        twin = copy.deepcopy(eager(model))
        before = [m for m in twin.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not before:
            raise UserError(f"compare={compare!r}: the model has no torch.nn BatchNorm module to "
                            "swap; pass a second model instead")
        other, label = swap_norms(twin, compare), compare_label or f"BN→{compare}"
    elif isinstance(compare, nn.Module):
        other, label = compare, compare_label or "compared model"
    else:
        raise UserError(f"compare must be a norm name or an nn.Module, got "
                        f"{type(compare).__name__}")
    variants.append(_Variant(label, other, make(other.parameters()), make))
    return variants


# -- one run --------------------------------------------------------------------------------

def _arch(model: nn.Module) -> str:
    return hashlib.sha256(repr(eager(model)).encode()).hexdigest()[:12]


def _config(v: _Variant, name: str, data: str, steps: int, panel: Panel, sites: Sites,
            batch: Batch, seed: int, eval_every: int) -> dict[str, Any]:
    return {
        "model": name, "variant": v.label, "arch": _arch(v.model),
        "params": sum(p.numel() for p in v.model.parameters()),
        "compiled": eager(v.model) is not v.model,
        "scale": f"{steps} steps", "data": data, "steps": steps, "seed": seed,
        "batch_size": int(batch[0].shape[0]), "optimizer": _describe_optimizer(v.optimizer),
        "eval_every": eval_every, **asdict(panel),
        "points": {p: sorted(s.steps or ()) for p, s in panel.schedules(steps).items()},
        "sites": {str(i): n for i, n in sites.names.items()},
        "feeders": {str(i): n for i, n in sites.feeders.items()},
        "skipped": {p: {str(i): why for i, why in d.items()} for p, d in sites.skipped.items()
                    if d and p in panel.probes},
    }


def _logger(sink: RunContext, step: int) -> Callable[[str, Any], None]:
    def log(name: str, value: Any) -> None:
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            sink.log_array(step, name, value)
        else:
            sink.log_metrics(step, {name: float(value)})

    return log


def _measure_at(step: int, probes: Sequence[Timed], v: _Variant, loss_fn: LossFn,
                batch: Batch, sink: RunContext) -> None:
    """Run the probes due at ``step`` outside the loop (``steps=0``, and after the last update)."""
    lr = float(v.optimizer.param_groups[0]["lr"])
    ctx = ProbeContext(v.model, loss_fn, batch, v.optimizer, lr, step, _logger(sink, step))
    for probe in probes:
        if probe.due(step):
            probe.on_step(ctx)


def _evaluator(loss_fn: LossFn, test: Batch | None) -> Callable[[nn.Module], dict] | None:
    if test is None:
        return None
    x, y = test

    def evaluate(model: nn.Module) -> dict[str, float]:
        losses, correct = [], 0
        for i in range(0, len(x), 1000):
            out = model(x[i:i + 1000])
            losses.append(loss_fn(out, y[i:i + 1000]) * len(out))
            if out.dim() == 2 and not y.is_floating_point():
                correct += int((out.argmax(1) == y[i:i + 1000]).sum())
        result = {"test_loss": float(sum(losses)) / len(x)}
        if not y.is_floating_point():
            result["test_acc"] = correct / len(x)
        return result

    return evaluate


def _evaluate_now(model: nn.Module, evaluate: Callable[[nn.Module], dict],
                  sink: RunContext) -> None:
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            sink.log_metrics(0, evaluate(model))
    finally:
        for m, flag in flags:
            m.training = flag


@dataclass
class _Job:
    """What every variant's run shares."""

    loss_fn: LossFn
    loader: Any
    steps: int
    panel: Panel
    name: str
    data: str
    seed: int
    test: Batch | None
    eval_every: int
    progress: bool


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _run_variant(store: Store, out: Path, v: _Variant, job: _Job) -> VariantResult:
    source = _Batches(job.loader, _device(v.model))
    first = source.at(0)
    check_fits(v.model, job.loss_fn, first)
    sites = find_sites(v.model, first[0], job.panel.max_units, job.panel.bn_mode)
    config = _config(v, job.name, job.data, job.steps, job.panel, sites, first, job.seed,
                     job.eval_every)
    key = run_key(config)
    run_id = store.register_run(key, RECIPE, config, job.seed)
    store.start_run(run_id, resumed_from=None, provenance=provenance(
        device=str(_device(v.model)), threads=torch.get_num_threads(), torch=torch.__version__,
        dtype=str(next(iter(v.model.parameters())).dtype).removeprefix("torch.")))
    ckpt = out / "checkpoints" / key[:16]
    sink = RunContext(store, run_id, key, ckpt, None)
    try:
        result = _measure_variant(v, job, source, sites, sink, run_id)
    except BaseException:
        sink.flush()
        store.finish_run(run_id, "failed", error=traceback.format_exc())
        raise
    finally:
        shutil.rmtree(ckpt, ignore_errors=True)
    sink.flush()
    if result.status == "diverged" and result.first_bad_step is not None:
        store.log_metrics(run_id, [(result.first_bad_step, "diverged_step",
                                    float(result.first_bad_step))])
    store.add_provenance(run_id, notes=result.notes)
    store.finish_run(run_id, result.status, error=None if result.status == "finished" else
                     f"diverged at step {result.first_bad_step}: loss non-finite or exploded")
    return result


def _measure_variant(v: _Variant, job: _Job, source: _Batches, sites: Sites, sink: RunContext,
                     run_id: int) -> VariantResult:
    seed_everything(job.seed, threads=torch.get_num_threads())
    first = source.at(0)
    step_seconds = bare_step_seconds(v.model, job.loss_fn, first, v.make_optimizer)
    sink.log_metrics(0, {"step_seconds": step_seconds})
    notes: dict[str, list[str]] = {}
    probes = [Timed(name, probe, step_seconds, rename, notes)
              for name, (probe, rename) in build_probes(job.panel, sites, job.steps).items()]
    evaluate = _evaluator(job.loss_fn, job.test)
    status, bad = "finished", None
    if job.steps == 0:
        _measure_at(0, probes, v, job.loss_fn, first, sink)
        if evaluate is not None:
            _evaluate_now(v.model, evaluate, sink)
    else:
        res = train(v.model, source, job.loss_fn, v.optimizer, steps=job.steps,
                    probes=probes, sink=sink, log_every=max(1, min(100, job.steps // 50)),
                    evaluate=evaluate, eval_every=job.eval_every, progress=job.progress,
                    desc=f"inspect {job.name} [{v.label}]")
        status, bad = res.status, res.first_bad_step
        if status == "finished":
            _measure_at(job.steps, probes, v, job.loss_fn, source.at(job.steps), sink)
    sink.flush()
    return VariantResult(v.label, run_id, status, bad, step_seconds, {}, notes)


def _costs(store: Store, run_id: int) -> dict[str, tuple[int, float]]:
    df = store.metrics(runs=[run_id])
    costs = df[df["name"].str.startswith("cost/")]
    return {name.removeprefix("cost/"): (len(g), float(g["value"].mean()))
            for name, g in costs.groupby("name", sort=False)}


def inspect(
    model: nn.Module,
    loss_fn: LossFn,
    loader: Any,
    *,
    steps: int = 0,
    optimizer: torch.optim.Optimizer | MakeOptimizer | None = None,
    probes: str | Sequence[str] | Panel = "default",
    out: str | Path = "bnlab_inspect",
    compare: str | nn.Module | None = None,
    compare_label: str | None = None,
    name: str = "model",
    data: str = "user",
    test: Batch | None = None,
    eval_every: int = 0,
    bn_mode: str = "train",
    seed: int = 0,
    progress: bool = False,
) -> InspectResult:
    """Run the instrument panel on ``model`` and store it in ``<out>/bnlab.db``.

    Trains ``model`` in place for ``steps`` updates (``steps=0``: no update; every probe
    measures the model as given, once) with the panel's probes on their schedules, and
    writes one run of the recipe ``inspect`` per variant; ``bnlab report --out <out>``
    draws them side by side. Running it again with the same settings replaces the run.

    Args:
        model: any ``nn.Module`` (a ``torch.compile``'d one trains compiled; the probes
            measure its original module).
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar``.
        loader: a :class:`bnlab.data.Loader` or any re-iterable of ``(inputs, targets)``
            with a length (a ``torch.utils.data.DataLoader``); batches are moved to the
            model's device.
        steps: optimizer updates (0: measure only).
        optimizer: ``None`` (SGD, lr 0.05, momentum 0.9), a torch optimizer on
            ``model.parameters()`` (rebuilt from its ``defaults`` for a compared model),
            or a factory ``params -> optimizer``.
        probes: ``"default"`` (cheap: every probe but the relative loss, at a few points),
            ``"all"`` (every probe, more points, every site, a larger Hessian budget), a
            list of probe names (:data:`bnlab.inspect.PROBES`) or a :class:`Panel`.
        out: the output folder (created).
        compare: a norm name (``"none"``: the same network with every ``torch.nn``
            BatchNorm swapped for it by :func:`bnlab.layers.swap_norms`, on a copy taken
            before training) or a second model (trained with the same kind of optimizer).
        compare_label: the compared variant's label (default ``"BN→<name>"``).
        name: the model's name in the store and the report.
        data: a label for the data (the report groups runs by it).
        test: ``(inputs, targets)`` held out: ``test_loss`` (and ``test_acc`` for class
            labels) every ``eval_every`` steps and at the end.
        eval_every: the evaluation period (0: at the end only).
        bn_mode: the probes' BN mode, ``"train"`` (batch statistics) or ``"eval"``.
        seed: seeds the global RNGs before each variant.
        progress: show a progress bar per variant.

    Returns:
        An :class:`InspectResult`; ``result.summary()`` prints the costs and headlines.

    Raises:
        bnlab.errors.UserError: when the model does not fit the data, the loader yields no
            pairs, ``steps`` or a probe name is bad, or ``compare`` cannot be built.

    Example:
        >>> import bnlab.inspect
        >>> res = bnlab.inspect(net, F.cross_entropy, loader, steps=200, compare="none",
        ...                     out="runs/mynet")                       # doctest: +SKIP
        >>> print(res.summary())                                         # doctest: +SKIP
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise UserError(f"steps must be an int >= 0, got {steps!r}")
    panel = probes if isinstance(probes, Panel) else Panel.preset(probes, bn_mode=bn_mode)
    _Batches(loader, _device(model)).at(0)  # a loader that yields no pairs fails here
    variants = _variants(model, optimizer, compare, compare_label)
    job = _Job(loss_fn, loader, steps, panel, name, data, seed, test, eval_every, progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = InspectResult(out, steps)
    with Store(out) as store:
        for v in variants:
            r = _run_variant(store, out, v, job)
            result.variants.append(VariantResult(r.label, r.run_id, r.status, r.first_bad_step,
                                                 r.step_seconds, _costs(store, r.run_id),
                                                 r.notes))
    return result
