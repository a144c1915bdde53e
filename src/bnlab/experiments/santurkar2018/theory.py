"""Santurkar et al. 2018, §4: the theorems about BN evaluated as numbers (PAPERS.md §2.7).

One run trains a BN network and, before its first update and after its last but one
(``steps − 1`` updates: "untrained" and "trained"), checks §4 on that network:

* **Theorem 4.1** at every BN site, with :func:`bnlab.probes.bn_gradient_identity`: the
  corrected identity ‖∂L̂/∂y_j‖² = (γ²/σ²)(‖g‖² − ⟨1,g⟩²/m − ⟨g,ŷ⟩²/m) per channel, and how
  often the printed bound with 1/√m in the last term fails (PAPERS.md §2.7, erratum).
  Evaluated on a float64 twin of the network with its own ε (the probe accounts for ε
  exactly), on the step's training batch.
* **Theorem 4.2** at one site of the MLP, on ``thm42_batches`` random training batches and
  ``thm42_units`` random units each, with Hessian-vector products w.r.t. the site's pre-BN
  outputs y and its BN outputs z (:func:`bnlab.probes.activation_hvp`): the left side
  vᵀ(∂²L̂/∂y_j²)v with v = ∂L̂/∂y_j, the terms T1 = (γ²/σ²) vᵀH_jj v and
  T2 = (γ/(mσ²))⟨ĝ_j, ŷ_j⟩‖v‖² of its bound, and the second form's bound
  (γ²/σ²)(ĝᵀH_jj ĝ − ⟨ĝ,ŷ⟩‖v‖²/(mγ)). The theorem is stated for BN without ε; it is checked
  on a float64 twin whose norms use ``check_eps`` (1e-30: σ̃ = σ to float64 precision). With
  the network's ε = 1e-5 the two sides differ by about 1e-5 relative, in both directions.
* **Observation 4.3**: for the network's weights W and random biases b of a plain twin,
  BN with γ_j = σ̃_j and β_j = μ_j + b_j (set from each site's batch statistics on the
  fly) computes exactly the plain network's outputs; the maximum relative difference.
* **Lemma 4.5** (trained network only), per site weight: with W0 at initialization, W* the
  trained weight and k = ⟨W*, W0⟩/‖W*‖², both sides of ‖W0 − kW*‖² ≤ ‖W0 − W*‖² −
  (‖W*‖² − ⟨W*, W0⟩)²/‖W*‖², and the relative change of the loss when W* is replaced by
  kW* (scale invariance, on the ε-free twin).

Networks (grid axis ``net``), both with BN and trained as the shared VGG setup trains (plain
SGD, LR 0.1, batch 128, Glorot, the same data): the VGG the other Santurkar recipes train
(Thm 4.1, Obs. 4.3, Lemma 4.5 at its 15 sites) and a 3-layer ReLU BN MLP with softmax
cross-entropy (all four; PAPERS.md §8 claim 14's network), on CIFAR-10 (``--data paper``)
or MNIST-1D.

Command: ``bnlab run santurkar2018.theory --scale quick --data paper --executor process
--workers 2``.

Scales (2 networks × 3 seeds = 6 runs):

* ``smoke``: 4 steps, Thm 4.2 on 3 batches of 2 units: seconds.
* ``quick``: the shared quick setup (vgg16 at width 1/8, 10,000 class-balanced CIFAR-10
  images) for 300 steps (MNIST-1D: 100); Thm 4.2 on 100 batches × 4 units, both checks.
  Measured: :data:`QUICK_RUNTIME`.
* ``paper``: 15,000 steps at full width on all of CIFAR-10, then the checks (Thm 4.1 at 15
  sites in float64 and 800 Thm 4.2 cases: a few minutes on a GPU beyond the training).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from bnlab.experiments.harness import RunEnv, Training
from bnlab.experiments.recipe import Preset, Recipe, register_recipe
from bnlab.experiments.santurkar2018.common import (
    NUM_CLASSES,
    VggConfig,
    VggRun,
    build_model,
    load_data,
    run_steps,
    vgg_training,
)
from bnlab.layers import norm_sites
from bnlab.models import create_model
from bnlab.probes import activation_hvp, bn_gradient_identity
from bnlab.probes.base import Probe, ProbeContext, Schedule
from bnlab.recipes.santurkar2018.measures import (
    LEMMA45,
    OBS43,
    THEORY,
    THM41_M,
    THM41_PRINTED_FAIL,
    THM41_REL_ERR,
    THM42_CASES,
)
from bnlab.sweep.config import PosFloat, PosInt

#: Measured quick-scale wall time of the whole grid, 2 workers on a 2-core CPU.
QUICK_RUNTIME = (
    "--data paper: 2 min 13 s wall on a quiet 2-core machine (170 s user + 18 s system CPU "
    "for the 6 runs); --data mnist1d: see the README (part of make reproduce)")

__all__ = ["PAPER", "PRESETS", "QUICK_RUNTIME", "RECIPE", "TheoryConfig", "TheoryProbe", "build",
           "float64_twin", "lemma45", "observation43", "thm41_site", "thm42_cases"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]

#: Relative slack for "holds" and "fails" in float64: far above the rounding of sums of up
#: to 10^6 terms (≈ 1e-10 relative), far below every effect measured here (≥ 1e-6).
FLOAT64_TOL = 1e-9


@dataclass(frozen=True)
class TheoryConfig(VggConfig):
    """One BN network trained as the shared VGG setup trains, checked against §4 twice."""

    net: Literal["mlp", "vgg"] = "mlp"  # the networks §4 is checked on (grid axis)
    mlp_widths: tuple[PosInt, ...] = (100, 100, 100)  # PAPERS.md §8 c14: 3-layer ReLU MLP
    thm42_site: PosInt = 2  # PAPERS.md §8 c14: one layer's pre-BN outputs (the middle one)
    thm42_batches: PosInt = 100  # PAPERS.md §8 c14: over 100 batches
    thm42_units: PosInt = 4  # units drawn per batch (ours; each costs 3 HVPs)
    check_eps: PosFloat = 1e-30  # BN ε of the twin for Thm 4.2 and Lemma 4.5 (stated at ε=0)


PAPER = TheoryConfig()
GRID = {"net": ("mlp", "vgg")}
QUICK = replace(PAPER, width=0.125, train_per_class=1_000, steps=300, steps_mnist1d=100,
                eval_every=100, acc_examples=1_024, test_examples=1_000)
SMOKE = replace(QUICK, steps=4, steps_mnist1d=0, eval_every=2, log_every=2, acc_examples=128,
                test_examples=200, train_per_class=20, thm42_batches=3, thm42_units=2,
                mlp_widths=(16, 16, 16))
PRESETS = {"paper": Preset(PAPER, GRID), "quick": Preset(QUICK, GRID),
           "smoke": Preset(SMOKE, GRID)}


# -- the checks (plain functions of a model; the probe below schedules them) ---------------


def float64_twin(model: nn.Module, eps: float | None = None) -> nn.Module:
    """A float64 copy of ``model`` in train mode; every norm's ε replaced when ``eps`` given."""
    twin = copy.deepcopy(model).double().train()
    if eps is not None:
        for site in norm_sites(twin):
            site.norm.eps = eps
    return twin


def _to64(batch: Batch) -> Batch:
    x, y = batch
    return x.double(), (y.double() if y.is_floating_point() else y)


def thm41_site(model64: nn.Module, loss_fn: LossFn, batch64: Batch, site: int
               ) -> dict[str, float]:
    """Theorem 4.1 at one site: the identity's worst relative error, the printed form's failures.

    ``rel_err`` = max over channels of |lhs − rhs| / max(|lhs|, |rhs|) (0 when both are 0);
    ``printed_fail`` = the fraction of channels where lhs exceeds the printed 1/√m bound by
    more than :data:`FLOAT64_TOL` relative; ``m`` = values per channel.
    """
    res = bn_gradient_identity(model64, loss_fn, batch64, site)
    lhs, rhs, printed = (np.asarray(res[k]) for k in ("lhs", "rhs", "rhs_printed"))  # (C,)
    scale = np.maximum(np.abs(lhs), np.abs(rhs))
    err = np.divide(np.abs(lhs - rhs), scale, out=np.zeros_like(scale), where=scale > 0)
    excess = lhs - printed
    fails = excess > FLOAT64_TOL * np.maximum(np.abs(lhs), np.abs(printed))
    return {"rel_err": float(err.max()), "printed_fail": float(fails.mean()),
            "m": float(res["m"])}


def observation43(bn_model: nn.Module, plain_model: nn.Module, batch: Batch,
                  generator: torch.Generator) -> float:
    """Observation 4.3: BN with γ = σ̃ and β = μ + b reproduces a plain network exactly.

    ``plain_model`` (the same architecture without norms) takes ``bn_model``'s weights and
    random biases b ~ N(0, 0.1²) at every site; on a copy of ``bn_model`` each norm's γ and
    β are set from its input's batch statistics just before it runs. Both run in float64 on
    ``batch``.

    Returns:
        max |out_BN − out_plain| / max |out_plain|.
    """
    bn = float64_twin(bn_model)
    plain = plain_model.double().train()
    shared = {k: v for k, v in bn.state_dict().items() if k in plain.state_dict()}
    plain.load_state_dict(shared, strict=False)
    hooks = []
    for bsite, psite in zip(norm_sites(bn), norm_sites(plain), strict=True):
        bias = _random_bias(psite.layer, generator)
        hooks.append(bsite.norm.register_forward_pre_hook(_set_affine(bias)))
    x, _ = _to64(batch)
    with torch.no_grad():
        out_bn = bn(x)
        out_plain = plain(x)
    for h in hooks:
        h.remove()
    return float((out_bn - out_plain).abs().max() / out_plain.abs().max())


def _random_bias(layer: nn.Module | None, generator: torch.Generator) -> torch.Tensor | None:
    """Draw the plain layer's bias b ~ N(0, 0.1²) in place and return it (None: no bias)."""
    bias = getattr(layer, "bias", None)
    if bias is None:
        return None
    with torch.no_grad():
        bias.copy_(0.1 * torch.randn(bias.shape, generator=generator, dtype=torch.float64))
    return bias.detach()


def _set_affine(bias: torch.Tensor | None) -> Callable[..., None]:
    """A pre-hook that sets γ = σ̃ and β = μ + b of a norm from its input (Obs. 4.3)."""

    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        y = args[0]  # (N, C, ...)
        dims = [0, *range(2, y.ndim)]
        var, mean = torch.var_mean(y, dim=dims, correction=0)  # (C,)
        module.weight.data.copy_((var + module.eps).sqrt())
        module.bias.data.copy_(mean + (0.0 if bias is None else bias))

    return hook


def lemma45(model0: nn.Module, w0: dict[str, torch.Tensor], loss_fn: LossFn, batch64: Batch
            ) -> dict[int, np.ndarray]:
    """Lemma 4.5 per site: ``[cos(W0, W*), lhs, rhs, loss change under W* → kW*]``.

    ``model0`` is the ε-free float64 twin of the trained network (W* its site weights),
    ``w0`` the site weights at initialization by layer name. lhs = ‖W0 − kW*‖², rhs =
    ‖W0 − W*‖² − (‖W*‖² − ⟨W*, W0⟩)²/‖W*‖², k = ⟨W*, W0⟩/‖W*‖²; the last entry is
    |L(kW*) − L(W*)| / |L(W*)| with only that site's weight scaled.
    """
    x, y = batch64
    with torch.no_grad():
        loss = float(loss_fn(model0(x), y))
    layers = dict(model0.named_modules())
    out = {}
    for site in norm_sites(model0):
        name = next(n for n, m in layers.items() if m is site.layer)
        w_star = site.layer.weight.detach().clone()
        w_init = w0[name].to(w_star)
        inner, sq = float((w_star * w_init).sum()), float(w_star.pow(2).sum())
        k = inner / sq
        lhs = float((w_init - k * w_star).pow(2).sum())
        rhs = float((w_init - w_star).pow(2).sum()) - (sq - inner) ** 2 / sq
        cos = inner / math.sqrt(sq * float(w_init.pow(2).sum()))
        with torch.no_grad():
            site.layer.weight.mul_(k)
            scaled = float(loss_fn(model0(x), y))
            site.layer.weight.copy_(w_star)
        out[site.index] = np.array([cos, lhs, rhs, abs(scaled - loss) / abs(loss)])
    return out


def _site_grads(model: nn.Module, norm: nn.Module, loss_fn: LossFn, batch: Batch
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward/backward: the site's input y, ∂L/∂y and ∂L/∂z (z = the norm's output)."""
    store: dict[str, torch.Tensor] = {}

    def pre(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        store["y"] = args[0].detach().requires_grad_(True)
        return (store["y"], *args[1:])

    def post(module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
        store["z"] = out

    handles = [norm.register_forward_pre_hook(pre), norm.register_forward_hook(post)]
    try:
        loss = loss_fn(model(batch[0]), batch[1])
    finally:
        for h in handles:
            h.remove()
    grad_y, grad_z = torch.autograd.grad(loss, [store["y"], store["z"]])
    return store["y"].detach(), grad_y, grad_z


def _unit(t: torch.Tensor, j: int) -> torch.Tensor:
    """``t`` with every channel but ``j`` zeroed: a direction in unit j's block."""
    out = torch.zeros_like(t)
    out[:, j] = t[:, j]
    return out


def thm42_cases(model0: nn.Module, loss_fn: LossFn, batch64: Batch, site: int,
                units: list[int]) -> np.ndarray:
    """Theorem 4.2 at ``site`` for each unit j: ``[lhs, T1, T2, alt, ⟨ĝ,ŷ⟩, γ]`` rows.

    ``model0`` is the ε-free float64 twin. With v = ∂L̂/∂y_j and ĝ = ∂L/∂z_j (the BN
    output's gradient, the paper's ∇_{y_j}L of the standard network at the same point):
    lhs = vᵀ(∂²L̂/∂y_j²)v (HVP w.r.t. the pre-BN outputs), T1 = (γ²/σ²)vᵀH_jj v and
    alt = (γ²/σ²)(ĝᵀH_jj ĝ − ⟨ĝ,ŷ⟩‖v‖²/(mγ)) (HVPs w.r.t. the BN outputs, the input of the
    site's activation), T2 = (γ/(mσ²))⟨ĝ,ŷ⟩‖v‖². The theorem: lhs ≤ T1 − T2; the second
    form (under an extra assumption on H) lhs ≤ alt.

    Returns:
        shape (len(units), 6), float64.
    """
    s = norm_sites(model0)[site - 1]
    act = s.name.rsplit(".", 1)[0] + ".act"  # the module that receives z
    y, gy, gz = _site_grads(model0, s.norm, loss_fn, batch64)
    dims = [0, *range(2, y.ndim)]
    var, mean = torch.var_mean(y, dim=dims, correction=0)  # (C,)
    y_hat = (y - mean.view(1, -1, *[1] * (y.ndim - 2))) / var.add(s.norm.eps).sqrt().view(
        1, -1, *[1] * (y.ndim - 2))
    m = y.numel() // y.shape[1]
    rows = []
    for j in units:
        v, g = _unit(gy, j), _unit(gz, j)
        gamma, s2 = float(s.norm.weight[j].detach()), float(var[j]) + s.norm.eps
        lhs = float((v * activation_hvp(model0, loss_fn, batch64, site, v)).sum())
        vhv = float((v * activation_hvp(model0, loss_fn, batch64, act, v)).sum())
        ghg = float((g * activation_hvp(model0, loss_fn, batch64, act, g)).sum())
        g_yhat, v_sq = float((g * y_hat).sum()), float(v.pow(2).sum())
        t1 = gamma**2 / s2 * vhv
        t2 = gamma / (m * s2) * g_yhat * v_sq
        alt = gamma**2 / s2 * (ghg - g_yhat * v_sq / (m * gamma))
        rows.append([lhs, t1, t2, alt, g_yhat, gamma])
    return np.asarray(rows, dtype=np.float64)


# -- the probe ------------------------------------------------------------------------------


class TheoryProbe(Probe):
    """Run the §4 checks at the first and the last step of a run (see the module docstring).

    Cost per call: one forward+backward per site (Thm 4.1) and two forwards (Obs. 4.3) in
    float64; with Thm 4.2, per batch one forward+backward plus 3 HVPs per unit (each a
    forward, a backward with graph and a double backward).

    Args:
        last: the step of the trained checks (``steps − 1``).
        plain: the same architecture without norms (Obs. 4.3 overwrites its parameters).
        data: the training set ``(x, y)`` Thm 4.2's batches are drawn from, or ``None``.
        cfg: the run's config (Thm 4.2's site, batches and units; ``check_eps``).
        generator: the private stream of batch and unit draws and Obs. 4.3's biases.
    """

    name = "theory"

    def __init__(self, last: int, plain: nn.Module, data: Batch | None,
                 cfg: TheoryConfig, generator: torch.Generator) -> None:
        super().__init__(Schedule(steps={0, last}))
        self.last, self.plain, self.data, self.cfg, self.gen = last, plain, data, cfg, generator
        self.w0: dict[str, torch.Tensor] = {}

    def on_step(self, ctx: ProbeContext) -> None:
        """Check Thm 4.1 and Obs. 4.3, Thm 4.2 on the MLP, and Lemma 4.5 at the last step."""
        twin = float64_twin(ctx.model)
        batch64 = _to64(ctx.batch)
        for site in norm_sites(twin):
            res = thm41_site(twin, ctx.loss_fn, batch64, site.index)
            ctx.log(THM41_REL_ERR.key(site=site.index), res["rel_err"])
            ctx.log(THM41_PRINTED_FAIL.key(site=site.index), res["printed_fail"])
            ctx.log(THM41_M.key(site=site.index), res["m"])
        ctx.log(OBS43.name, observation43(ctx.model, self.plain, ctx.batch, self.gen))
        twin0 = float64_twin(ctx.model, eps=self.cfg.check_eps)
        if self.data is not None:
            ctx.log(THM42_CASES.key(site=self.cfg.thm42_site), self._thm42(twin0, ctx.loss_fn))
        if ctx.step == 0:
            self.w0 = {n: s.layer.weight.detach().clone() for n, s in _site_layers(ctx.model)}
        if ctx.step == self.last and self.w0:
            for index, row in lemma45(twin0, self.w0, ctx.loss_fn, batch64).items():
                ctx.log(LEMMA45.key(site=index), row)

    def _thm42(self, twin0: nn.Module, loss_fn: LossFn) -> np.ndarray:
        """Cases over ``thm42_batches`` random batches: shape (batches, units, 6)."""
        x, y = self.data
        width = norm_sites(twin0)[self.cfg.thm42_site - 1].norm.num_features
        cases = []
        for _ in range(self.cfg.thm42_batches):
            idx = torch.randperm(len(x), generator=self.gen)[: self.cfg.batch_size].to(x.device)
            units = torch.randperm(width, generator=self.gen)[: self.cfg.thm42_units].tolist()
            cases.append(thm42_cases(twin0, loss_fn, _to64((x[idx], y[idx])),
                                     self.cfg.thm42_site, units))
        return np.stack(cases)

    def state_dict(self) -> dict[str, Any]:
        """The initial weights (Lemma 4.5 needs them at the last step) and the stream."""
        return {"w0": self.w0, "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.w0 = state["w0"]
        self.gen.set_state(state["gen"])


def _site_layers(model: nn.Module) -> list[tuple[str, Any]]:
    layers = {id(m): n for n, m in model.named_modules()}
    return [(layers[id(s.layer)], s) for s in norm_sites(model) if s.layer is not None]


# -- the recipe -----------------------------------------------------------------------------


def _mlp(cfg: TheoryConfig, x: torch.Tensor, norm: str) -> nn.Module:
    return create_model("mlp", norm=norm, in_shape=tuple(x.shape[1:]), num_classes=NUM_CLASSES,
                        widths=cfg.mlp_widths, activation="relu", init=cfg.init)


def build(cfg: TheoryConfig, env: RunEnv) -> Training:
    """A BN network trained as the shared setup trains, checked at its first and last step."""
    data = load_data(cfg, env)
    if cfg.net == "vgg":
        model = build_model(replace(cfg, norm="bn"), env, data).model
        plain = build_model(replace(cfg, norm="none"), env, data).model
    else:
        model, plain = env.place(_mlp(cfg, data.x, "bn")), env.place(_mlp(cfg, data.x, "none"))
    # The plain twin is built here: a probe must not draw from the global RNG.
    probe = TheoryProbe(run_steps(cfg, env) - 1, plain,
                        (data.x, data.y) if cfg.net == "mlp" else None, cfg, env.generator(42))
    return vgg_training(cfg, env, VggRun(model, data), [probe])


RECIPE = register_recipe(Recipe(THEORY, PRESETS, build))
