"""Ioffe & Szegedy 2015 §3.1 (Alg. 2) and §3.3: BN at inference, and scale invariance.

The network is Fig. 1's MNIST MLP with BN (784-100-100-100-10, sigmoid, batch 60, plain
SGD). At every evaluation, on a copy of it with the weights frozen:

* **Alg. 2 (c05).** Population statistics are recomputed from ``pop_batches`` training
  batches of size m pushed through the training-mode network, E[x] = mean of μ_B and
  Var[x] = m/(m−1) · mean of σ²_B (biased per batch), and every BN is folded into the
  affine map y = γ/√(Var+ε) · x + (β − γE[x]/√(Var+ε)). The folded network's test
  predictions are compared with the eval-mode network's, which normalizes with the
  running statistics that the momentum update (PyTorch's x̂ ← (1−m)x̂ + m·x_B, m = 0.1)
  tracked during training. The two statistics are estimated differently (a 100-batch
  average at fixed weights against a ~10-batch moving average over moving weights), so
  their agreement is a measurement, not algebra. Folding the running statistics themselves
  is algebra and is stored as an identity check.
* **§3.3 (c06).** For each norm site k and a ∈ {0.1, 10}, W_k → a·W_k on a test batch in
  training mode: the output, the gradient w.r.t. the input and a·∂L/∂(aW_k) against
  ∂L/∂W_k, as relative changes; in float64 with ε → 0 (1e-300: the identity) and in float32 with
  the trained ε (the size of the ε effect).

Command: ``bnlab run ioffe2015.properties --scale quick --data paper``.

Scales (3 seeds, one run each), measured on a 2-core CPU:

* ``smoke``: 40 steps: seconds.
* ``quick``: 5,000 steps, evaluations every 1,000: on real MNIST 5 min 52 s wall at a
  load average of 22 on the 2 cores, 41 s of CPU; on MNIST-1D 2 min 7 s wall at a load
  average of 22.
* ``paper``: 50,000 steps as Fig. 1: about a minute a run on a CPU.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from bnlab.data import Loader
from bnlab.experiments.harness import RunEnv, Training
from bnlab.experiments.recipe import Preset, Recipe, RecipeConfig, register_recipe
from bnlab.models import create_model, norm_sites
from bnlab.recipes.ioffe2015 import (
    ACC_POP,
    AGREEMENT,
    BIASED_GAP,
    FOLD_ERR,
    LOGIT_GAP,
    MEAN_GAP,
    PROPERTIES,
    SCALE_IN_GRAD,
    SCALE_IN_GRAD_EPS,
    SCALE_OUT,
    SCALE_OUT_EPS,
    SCALE_W_GRAD,
    SCALE_W_GRAD_EPS,
    TEST_ACC,
    TEST_N,
    VAR_GAP,
)
from bnlab.sweep.config import NonNegInt, PosFloat, PosInt
from bnlab.train import SGD, build_optimizer

__all__ = [
    "PAPER",
    "PRESETS",
    "RECIPE",
    "PopulationStats",
    "PropertiesConfig",
    "build",
    "fold",
    "population_stats",
    "scale_invariance",
]

Batch = tuple[torch.Tensor, torch.Tensor]
#: BN's ε for the exact check: torch's batch_norm needs ε > 0 in training mode, and 1e-300
#: changes no float64 variance of order 1e-3 or more (PAPERS.md §8 claim 6: "use ε → 0").
EPS_LIMIT = 1e-300


@dataclass(frozen=True)
class PropertiesConfig(RecipeConfig):
    """One BN MLP trained and checked at every evaluation."""

    lr: PosFloat = 0.5  # the ioffe2015.mnist default (the paper states none)
    steps: PosInt = 50_000  # paper: 50k steps (§4.1)
    batch_size: PosInt = 60  # paper: 60 (§4.1); m of Alg. 2
    widths: tuple[PosInt, ...] = (100, 100, 100)  # paper: 3 hidden layers of 100
    init_std: PosFloat = 0.1  # paper: "small random Gaussian values"; std not stated
    pop_batches: PosInt = 100  # Alg. 2's "multiple training mini-batches": not stated
    scales: tuple[PosFloat, ...] = (0.1, 10.0)  # PAPERS.md §8 claim 6: a ∈ {0.1, 10}
    scale_batch: PosInt = 500  # test inputs of the scale-invariance check
    eval_every: PosInt = 10_000
    log_every: PosInt = 100
    checkpoint_every: NonNegInt = 0


PAPER = PropertiesConfig()
PRESETS = {
    "paper": Preset(PAPER, {}),
    "quick": Preset(replace(PAPER, steps=5_000, eval_every=1_000), {}),
    "smoke": Preset(replace(PAPER, steps=40, eval_every=20, pop_batches=5, scale_batch=32,
                            log_every=10), {}),
}


# -- Alg. 2: population statistics and folding ---------------------------------------------


@dataclass
class PopulationStats:
    """Per norm site: E[x] and the biased mean of σ²_B over the batches, each (C,)."""

    mean: dict[str, torch.Tensor]
    batch_var: dict[str, torch.Tensor]
    m: int

    def var(self, *, unbiased: bool = True) -> dict[str, torch.Tensor]:
        """Var[x] = m/(m−1) · E[σ²_B] (Alg. 2), or E[σ²_B] itself."""
        factor = self.m / (self.m - 1) if unbiased else 1.0
        return {k: v * factor for k, v in self.batch_var.items()}


def population_stats(model: nn.Module, batches: list[torch.Tensor]) -> PopulationStats:
    """Alg. 2's statistics of every norm site's input over ``batches`` (training mode).

    Works on a copy: the model's running statistics are not touched.
    """
    net = copy.deepcopy(model).train()
    sites = {s.name: s.norm for s in norm_sites(net)}
    sums: dict[str, list[torch.Tensor]] = {k: [] for k in sites}
    sq: dict[str, list[torch.Tensor]] = {k: [] for k in sites}

    def hook(name: str) -> Callable[..., None]:
        def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].detach().double()  # (N, C)
            sums[name].append(x.mean(0))
            sq[name].append(x.var(0, correction=0))

        return record

    handles = [mod.register_forward_pre_hook(hook(k)) for k, mod in sites.items()]
    try:
        with torch.no_grad():
            for xb in batches:
                net(xb)
    finally:
        for h in handles:
            h.remove()
    return PopulationStats({k: torch.stack(v).mean(0) for k, v in sums.items()},
                           {k: torch.stack(v).mean(0) for k, v in sq.items()},
                           batches[0].shape[0])


class _Affine(nn.Module):
    """y = scale · x + shift per feature: a BN folded for inference."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift  # (N, C)


def fold(model: nn.Module, mean: dict[str, torch.Tensor], var: dict[str, torch.Tensor]
         ) -> nn.Module:
    """A copy of ``model`` with each BN replaced by γ/√(var+ε)·x + (β − γ·mean/√(var+ε))."""
    net = copy.deepcopy(model).eval()
    for site in norm_sites(net):
        bn = site.norm
        dtype = bn.weight.dtype
        scale = bn.weight.detach().double() / torch.sqrt(var[site.name].double() + bn.eps)
        shift = bn.bias.detach().double() - scale * mean[site.name].double()
        parent, _, attr = site.name.rpartition(".")
        setattr(net.get_submodule(parent), attr, _Affine(scale.to(dtype), shift.to(dtype)))
    return net


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _alg2_metrics(model: nn.Module, pop: PopulationStats, xt: torch.Tensor,
                  yt: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        z_run = model.eval()(xt)
        z_pop = fold(model, pop.mean, pop.var())(xt)
        z_biased = fold(model, pop.mean, pop.var(unbiased=False))(xt)
        running = {s.name: (s.norm.running_mean, s.norm.running_var) for s in norm_sites(model)}
        z_fold = fold(model, {k: m for k, (m, _) in running.items()},
                      {k: v for k, (_, v) in running.items()})(xt)
    gaps_m, gaps_v = [], []
    for name, (run_mean, run_var) in running.items():
        var = pop.var()[name]
        gaps_m.append(((pop.mean[name] - run_mean.double()).abs() / var.sqrt()).mean())
        gaps_v.append((run_var.double() / var - 1.0).abs().mean())
    return {
        ACC_POP.name: float((z_pop.argmax(1) == yt).double().mean()),
        AGREEMENT.name: float((z_pop.argmax(1) == z_run.argmax(1)).double().mean()),
        LOGIT_GAP.name: _rel(z_pop, z_run),
        BIASED_GAP.name: _rel(z_biased, z_run),
        FOLD_ERR.name: float((z_fold - z_run).abs().max() / z_run.abs().max()),
        MEAN_GAP.name: float(torch.stack(gaps_m).mean()),
        VAR_GAP.name: float(torch.stack(gaps_v).mean()),
    }


# -- §3.3: scale invariance ------------------------------------------------------------------


def _pass(net: nn.Module, x: torch.Tensor, y: torch.Tensor, weight: nn.Parameter
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Output, ∂L/∂x and ∂L/∂weight of one training-mode pass (BN on batch statistics)."""
    x = x.clone().requires_grad_(True)
    out = net(x)
    grad_x, grad_w = torch.autograd.grad(nn.functional.cross_entropy(out, y), [x, weight])
    return out.detach(), grad_x, grad_w


def scale_invariance(model: nn.Module, batch: Batch, scales: tuple[float, ...], *,
                     dtype: torch.dtype, eps: float | None) -> tuple[float, float, float]:
    """Max relative changes (output, ∂L/∂x, a·∂L/∂(aW) vs ∂L/∂W) over sites and scales.

    Args:
        model: a BN network (left untouched: the check runs on copies).
        batch: ``(inputs, targets)``; BN uses their batch statistics.
        scales: the factors a.
        dtype: the copies' dtype.
        eps: BN's ε in the copies (``None``: keep the trained ε).
    """
    base = copy.deepcopy(model).to(dtype).train()
    if eps is not None:
        for site in norm_sites(base):
            site.norm.eps = eps
    x, y = batch[0].to(dtype), batch[1]
    worst = [0.0, 0.0, 0.0]
    with torch.enable_grad():
        for site in norm_sites(base):
            ref = _pass(base, x, y, site.layer.weight)
            for a in scales:
                net = copy.deepcopy(base)
                layer = norm_sites(net)[site.index - 1].layer
                with torch.no_grad():
                    layer.weight.mul_(a)
                out, gx, gw = _pass(net, x, y, layer.weight)
                errs = (_rel(out, ref[0]), _rel(gx, ref[1]), _rel(a * gw, ref[2]))
                worst = [max(w, e) for w, e in zip(worst, errs, strict=True)]
    return worst[0], worst[1], worst[2]


def _scale_metrics(model: nn.Module, batch: Batch, scales: tuple[float, ...]
                   ) -> dict[str, float]:
    exact = scale_invariance(model, batch, scales, dtype=torch.float64, eps=EPS_LIMIT)
    trained = scale_invariance(model, batch, scales, dtype=torch.float32, eps=None)
    names = (SCALE_OUT, SCALE_IN_GRAD, SCALE_W_GRAD, SCALE_OUT_EPS, SCALE_IN_GRAD_EPS,
             SCALE_W_GRAD_EPS)
    return {q.name: v for q, v in zip(names, (*exact, *trained), strict=True)}


# -- the recipe --------------------------------------------------------------------------------


def build(cfg: PropertiesConfig, env: RunEnv) -> Training:
    """The BN MLP and plain SGD; every evaluation checks Alg. 2 and §3.3 on a copy."""
    x, y = env.load("train")
    xt, yt = env.load("test")
    model = env.place(create_model(
        "mlp", norm="bn", in_shape=tuple(x.shape[1:]), num_classes=10, widths=cfg.widths,
        activation="sigmoid", init="normal", init_std=cfg.init_std))
    # The population batches: a fixed set of training batches of size m, the same each time.
    pick = torch.randperm(len(x), generator=env.generator(2))[: cfg.pop_batches * cfg.batch_size]
    pop_batches = list(x[pick.to(x.device)].split(cfg.batch_size))
    scale_batch = (xt[: cfg.scale_batch], yt[: cfg.scale_batch])

    def evaluate(m: nn.Module) -> dict[str, float]:
        acc = float((m(xt).argmax(1) == yt).double().mean())
        pop = population_stats(m, pop_batches)
        return {TEST_ACC.name: acc, TEST_N.name: float(len(yt)),
                **_alg2_metrics(copy.deepcopy(m), pop, xt, yt),
                **_scale_metrics(m, scale_batch, cfg.scales)}

    return Training(
        model, Loader(x, y, cfg.batch_size, seed=env.seed), nn.functional.cross_entropy,
        build_optimizer(SGD(lr=cfg.lr), model.parameters()), steps=cfg.steps,
        evaluate=evaluate, eval_every=cfg.eval_every, log_every=cfg.log_every,
        checkpoint_every=cfg.checkpoint_every)


RECIPE = register_recipe(Recipe(PROPERTIES, PRESETS, build))
