"""The instrument panel: which probes run, at which norm sites, on which steps.

A :class:`Panel` is the typed settings of one panel (the probes and how often and how
much each measures); :meth:`Panel.preset` gives the cheap ``"default"`` panel and the
expensive ``"all"``. :func:`find_sites` reads a model's norm sites from one traced forward
pass: where activations can be read, which layer feeds each norm (the weight ICS and the
gradient statistics measure) and, for the sites where no single layer does (after a
residual sum or a concatenation), why not. :func:`build_probes` turns both into the
library's :class:`~bnlab.probes.Probe` objects, each on its :class:`~bnlab.probes.Schedule`.

Every probe here is one of :mod:`bnlab.probes` or a thin scheduled call of one of its
functions (:func:`~bnlab.probes.gradient_explosion_rate`,
:func:`~bnlab.probes.depth_profile`, :func:`~bnlab.probes.hessian_eigs`); nothing is
measured by code of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from bnlab.errors import UserError
from bnlab.layers import norm_sites
from bnlab.probes import (
    ActivationStatsProbe,
    GradientStatsProbe,
    ICSProbe,
    LandscapeProbe,
    Probe,
    ProbeContext,
    RelativeLossProbe,
    Schedule,
    depth_profile,
    gradient_explosion_rate,
    hessian_eigs,
)
from bnlab.probes._trace import trace_forward
from bnlab.probes.hessian import HessianBudget
from bnlab.recipes.inspect import PROBES

__all__ = ["ALL", "DEFAULT", "PROBES", "Panel", "Sites", "build_probes", "eager", "find_sites",
           "points"]

#: The cheap panel: every probe but Bjorck's relative loss, at a few points.
DEFAULT: tuple[str, ...] = tuple(p for p in PROBES if p != "relative_loss")
#: Every probe.
ALL: tuple[str, ...] = PROBES
#: Bjorck et al. 2018, Fig. 3: 17 log-spaced step sizes from 1e-5 to 1e-1.
ETAS: tuple[float, ...] = tuple(float(e) for e in np.logspace(-5, -1, 17))


def eager(model: nn.Module) -> nn.Module:
    """A ``torch.compile``'d model's original module (``_orig_mod``), else ``model``."""
    while isinstance(getattr(model, "_orig_mod", None), nn.Module):
        model = model._orig_mod
    return model


@dataclass(frozen=True)
class Panel:
    """What the panel measures and how often (stored with every run).

    A probe with ``n`` points runs at ``n`` evenly spaced steps from 0 to the last step
    (after training) inclusive; with ``steps=0`` every probe runs once, at step 0.

    Attributes:
        probes: the probes to run, a subset of :data:`PROBES`.
        bn_mode: the BN mode of the probes' passes: ``"train"`` (batch statistics, the
            training objective) or ``"eval"`` (running statistics).
        act_points: points of the activation statistics (11: every tenth of the run).
        act_bins: histogram bins of the activation statistics.
        percentiles: the activation percentiles (Ioffe Fig. 1: 15, 50, 85).
        max_units: the channels measured per site (the first ones).
        points: points of the gradient statistics, ICS and the landscape.
        ics_sites: sites ICS measures, spread over depth (first, middle, last, ...);
            0: every site with a single feeding layer. Cost: one forward+backward each.
        multipliers: the landscape's step sizes η / lr (Santurkar Fig. 4: [1/2, 4]).
        grad_bins: histogram bins of the gradient statistics.
        explosion_points: points of the gradient-explosion rate (1: at the start only,
            Yang et al.'s initialization measurement).
        depth_points: points of the depth profile (2: start and end).
        hessian_points: points of the top Hessian eigenvalue.
        hessian_max_iter: the budget of Hessian-vector products per eigenvalue.
        hessian_tol: the relative Ritz residual at which Lanczos stops.
        hessian_seconds: a wall-clock cap per eigenvalue (checked after each product),
            or ``None``; ``hessian/accuracy`` says how close a capped value is.
        relative_points: points of the relative loss (Bjorck Fig. 3).
        etas: the relative loss's step sizes.
    """

    probes: tuple[str, ...] = DEFAULT
    bn_mode: str = "train"
    act_points: int = 11
    act_bins: int = 30
    percentiles: tuple[float, ...] = (15, 50, 85)
    max_units: int = 16
    points: int = 5
    ics_sites: int = 3
    multipliers: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    grad_bins: int = 50
    explosion_points: int = 1
    depth_points: int = 2
    hessian_points: int = 2
    hessian_max_iter: int = 20
    hessian_tol: float = 1e-3
    hessian_seconds: float | None = None
    relative_points: int = 3
    etas: tuple[float, ...] = field(default=ETAS)

    def __post_init__(self) -> None:
        unknown = [p for p in self.probes if p not in PROBES]
        if unknown or not self.probes:
            raise UserError(f"unknown probes {unknown or '(none given)'}; choose from "
                            f"{', '.join(PROBES)}, or 'default' / 'all'")
        if self.bn_mode not in ("train", "eval"):
            raise UserError(f"bn_mode must be 'train' or 'eval', got {self.bn_mode!r}")
        counts = {f: getattr(self, f) for f in ("act_points", "act_bins", "max_units", "points",
                                                 "grad_bins", "explosion_points", "depth_points",
                                                 "hessian_points", "hessian_max_iter",
                                                 "relative_points")}
        bad = {f: v for f, v in counts.items() if isinstance(v, bool) or not isinstance(v, int)
               or v < 1}
        if self.hessian_seconds is not None and not self.hessian_seconds > 0:
            raise UserError(f"hessian_seconds must be > 0 or None, got {self.hessian_seconds!r}")
        if bad or self.ics_sites < 0 or not self.hessian_tol > 0:
            raise UserError(f"panel settings must be ints >= 1 (ics_sites >= 0, hessian_tol > 0), "
                            f"got {bad or {'ics_sites': self.ics_sites, 'tol': self.hessian_tol}}")
        for name in ("multipliers", "etas"):
            values = getattr(self, name)
            if not values or min(values) <= 0:
                raise UserError(f"panel {name} must be a non-empty list of positive numbers, "
                                f"got {values!r}")
        if not self.percentiles or not all(0 <= q <= 100 for q in self.percentiles):
            raise UserError(f"panel percentiles must be levels in [0, 100], got "
                            f"{self.percentiles!r}")

    @classmethod
    def preset(cls, probes: str | Sequence[str] = "default", **changes: Any) -> Panel:
        """``"default"`` (cheap), ``"all"`` (every probe, more points and sites), or a list.

        A list runs the named probes with the default settings; ``changes`` override
        any field.
        """
        if probes == "all":
            base = cls(probes=ALL, act_points=51, max_units=64, points=11, ics_sites=0,
                       explosion_points=2,
                       depth_points=5, hessian_points=5, hessian_max_iter=100,
                       hessian_tol=1e-4, relative_points=5)
        elif probes == "default":
            base = cls()
        elif isinstance(probes, str):
            base = cls(probes=tuple(p.strip() for p in probes.split(",") if p.strip()))
        else:
            base = cls(probes=tuple(probes))
        return replace(base, **changes)

    def schedules(self, steps: int) -> dict[str, Schedule]:
        """The steps each chosen probe runs on (``steps``: the updates of the run)."""
        counts = {"activations": self.act_points, "gradients": self.points, "ics": self.points,
                  "landscape": self.points, "explosion": self.explosion_points,
                  "depth": self.depth_points, "hessian": self.hessian_points,
                  "relative_loss": self.relative_points}
        return {probe: Schedule(steps=points(counts[probe], steps)) for probe in self.probes}


def points(n: int, steps: int) -> set[int]:
    """``n`` evenly spaced steps from 0 to ``steps`` inclusive (just 0 when n < 2)."""
    if n < 2 or steps == 0:
        return {0}
    return {round(i * steps / (n - 1)) for i in range(n)}  # fewer when steps < n - 1


@dataclass(frozen=True)
class Sites:
    """A model's norm sites as the panel measures them.

    Attributes:
        names: norm-site index -> the norm module's name, for every site.
        channels: index -> channels measured (``max_units`` at most; 0: every channel of
            a norm that does not say how many it has, e.g. LayerNorm), for the sites that run
            and receive a tensor (the activation statistics' sites).
        feeders: index -> the name of the layer feeding the norm, for the sites that have
            a single one (ICS and gradient statistics measure its weight).
        skipped: probe -> {index: why the site is not measured}.
    """

    names: dict[int, str]
    channels: dict[int, int]
    feeders: dict[int, str]
    skipped: dict[str, dict[int, str]]

    def spread(self, count: int) -> list[int]:
        """``count`` ICS sites spread evenly over depth (every one for 0)."""
        have = sorted(i for i in self.feeders if i not in self.skipped["ics"])
        if count <= 0 or count >= len(have):
            return have
        return sorted({have[round(i * (len(have) - 1) / max(count - 1, 1))]
                       for i in range(count)})


def find_sites(model: nn.Module, inputs: torch.Tensor, max_units: int,
               bn_mode: str = "train") -> Sites:
    """Read the norm sites of ``model`` from one traced forward pass on ``inputs``.

    Cost: 1 forward pass (no backward); leaves no trace on the model.

    Raises:
        UserError: when the model has no norm site (nothing for the panel to measure).
    """
    model = eager(model)
    sites = norm_sites(model)
    if not sites:
        raise UserError("the model has no normalization module (torch BatchNorm/GroupNorm/"
                        "LayerNorm or a bnlab norm): the panel measures at norm sites")
    names = {s.index: s.name for s in sites}
    declared = getattr(model, "norm_site_names", None) is not None
    trace = None if declared else trace_forward(model, inputs, [s.norm for s in sites], bn_mode)
    layer_names = {id(m): n for n, m in model.named_modules()}
    channels: dict[int, int] = {}
    feeders: dict[int, str] = {}
    no_act: dict[int, str] = {}
    no_weight: dict[int, str] = {}
    for s in sites:
        feeder = None if trace is None else trace.feeders.get(id(s.norm))
        if trace is not None and feeder is None:
            no_act[s.index] = no_weight[s.index] = "was not called in the forward pass"
            continue
        layer = s.layer if feeder is None else feeder.layer
        if feeder is not None and "no tensor" in feeder.problem:
            no_act[s.index] = feeder.problem
        else:
            width = getattr(s.norm, "num_features", None) or getattr(s.norm, "num_channels", 0)
            channels[s.index] = min(int(width), max_units) if width else 0  # 0: unknown, all
        if layer is None:
            no_weight[s.index] = (feeder.problem if feeder is not None
                                  else "the model declares no feeding layer")
        else:
            feeders[s.index] = layer_names[id(layer)]
    feeders = _first_feeders(feeders, no_weight)
    first = _first_layer(model, trace)
    no_ics = {i: f"no layer with parameters runs before its feeding layer {layer!r}, so ICS "
                 "is 0 by definition" for i, layer in feeders.items() if layer == first}
    skipped = {"activations": no_act, "gradients": no_weight, "ics": {**no_weight, **no_ics}}
    return Sites(names, channels, feeders, skipped)


def _first_layer(model: nn.Module, trace: Any) -> str | None:
    """The first module with trainable parameters of its own, in call (or declared) order."""
    modules = trace.call_order if trace is not None else [m for m in model.modules()]
    names = {id(m): n for n, m in model.named_modules()}
    for m in modules:
        if any(p.requires_grad for p in m.parameters(recurse=False)):
            return names[id(m)]
    return None


def _first_feeders(feeders: dict[int, str], no_weight: dict[int, str]) -> dict[int, str]:
    """One site per feeding layer (a layer feeding two norms is measured at the first)."""
    seen: dict[str, int] = {}
    for index, layer in sorted(feeders.items()):
        if layer in seen:
            no_weight[index] = f"its feeding layer {layer!r} also feeds site {seen[layer]}"
        else:
            seen[layer] = index
    return {i: layer for layer, i in seen.items()}


class ExplosionProbe(Probe):
    """:func:`~bnlab.probes.gradient_explosion_rate` over every norm site, on a schedule.

    Logs ``explosion/ratios``, ``explosion/sites`` (the indices measured) and
    ``explosion/mean``; the sites it skips are named in a warning. Cost: 1 forward+backward.
    """

    name = "explosion"

    def on_step(self, ctx: ProbeContext) -> None:
        """Measure on this step's batch and log."""
        res = gradient_explosion_rate(ctx.model, ctx.loss_fn, ctx.batch, bn_mode=self.bn_mode)
        ctx.log("explosion/ratios", np.asarray(res["ratios"], dtype=np.float64))
        ctx.log("explosion/sites", np.asarray([int(k) for k in res["layers"]]))
        ctx.log("explosion/mean", float(res["mean"]))


class DepthProbe(Probe):
    """:func:`~bnlab.probes.depth_profile` at every norm site's block output, on a schedule.

    Logs ``depth/log10_std``, ``depth/sites`` and ``depth/slope`` (when at least two sites
    give a finite value); the sites it skips are named in a warning. Cost: 1 forward pass.
    """

    name = "depth"

    def on_step(self, ctx: ProbeContext) -> None:
        """Measure on this step's inputs and log."""
        res = depth_profile(ctx.model, ctx.batch, bn_mode=self.bn_mode)
        if not res["sites"]:
            raise ValueError("depth_profile: no norm site's block output can be measured")
        ctx.log("depth/log10_std", np.asarray(res["log10_std"], dtype=np.float64))
        ctx.log("depth/sites", np.asarray([int(k) for k in res["sites"]]))
        if math.isfinite(res["slope"]):
            ctx.log("depth/slope", float(res["slope"]))


class HessianProbe(Probe):
    """:func:`~bnlab.probes.hessian_eigs` (the top eigenvalue) on a schedule.

    Logs ``hessian/top``, ``hessian/hvps``, ``hessian/converged`` and
    ``hessian/accuracy`` (‖Hy − θy‖ / |θ|: an eigenvalue of H lies within that fraction
    of ``hessian/top``, converged or not). Cost: 1 forward, 1 backward with
    ``create_graph`` and at most ``max_iter`` Hessian-vector products (and at most
    ``seconds``, when given, checked after each product).
    """

    name = "hessian"

    def __init__(self, schedule: Schedule, *, bn_mode: str = "train", max_iter: int = 20,
                 tol: float = 1e-3, seconds: float | None = None) -> None:
        super().__init__(schedule, bn_mode=bn_mode)
        self.max_iter, self.tol = max_iter, tol
        self.budget = None if seconds is None else HessianBudget(seconds=seconds)

    def on_step(self, ctx: ProbeContext) -> None:
        """Measure the top eigenvalue of this step's batch loss and log it."""
        eigs = hessian_eigs(eager(ctx.model), ctx.loss_fn, ctx.batch, k=1, bn_mode=self.bn_mode,
                            tol=self.tol, max_iter=self.max_iter, budget=self.budget)
        ctx.log("hessian/top", float(eigs.values[0]))
        ctx.log("hessian/hvps", float(eigs.hvps))
        ctx.log("hessian/converged", float(eigs.converged))
        ctx.log("hessian/accuracy", float(eigs.accuracy[0]))


def build_probes(panel: Panel, sites: Sites, steps: int) -> dict[str, tuple[Probe, dict]]:
    """The panel's probes by name, each with the renaming of its logged site keys.

    The library probes key ICS and gradient statistics by the layer they are given (the
    feeding layer's name); the panel stores every per-site quantity under the norm-site
    index, so the renaming ``{layer name: index}`` goes with them.
    """
    when = panel.schedules(steps)
    mode = panel.bn_mode
    ics_sites = sites.spread(panel.ics_sites)
    grad_sites = sorted(sites.feeders)
    makers = {
        "activations": lambda: (ActivationStatsProbe(
            sorted(sites.channels), {i: range(c) for i, c in sites.channels.items() if c},
            percentiles=panel.percentiles, bins=panel.act_bins, bn_mode=mode,
            schedule=when["activations"], prefix="act"), {}),
        "gradients": lambda: (GradientStatsProbe(
            [sites.feeders[i] for i in grad_sites], schedule=when["gradients"], bn_mode=mode,
            bins=panel.grad_bins), {sites.feeders[i]: str(i) for i in grad_sites}),
        "ics": lambda: (ICSProbe([sites.feeders[i] for i in ics_sites], schedule=when["ics"],
                                 bn_mode=mode), {sites.feeders[i]: str(i) for i in ics_sites}),
        "landscape": lambda: (LandscapeProbe(panel.multipliers, schedule=when["landscape"],
                                             bn_mode=mode), {}),
        "explosion": lambda: (ExplosionProbe(when["explosion"], bn_mode=mode), {}),
        "depth": lambda: (DepthProbe(when["depth"], bn_mode=mode), {}),
        "hessian": lambda: (HessianProbe(when["hessian"], bn_mode=mode,
                                         max_iter=panel.hessian_max_iter,
                                         tol=panel.hessian_tol,
                                         seconds=panel.hessian_seconds), {}),
        "relative_loss": lambda: (RelativeLossProbe(panel.etas, schedule=when["relative_loss"],
                                                    bn_mode=mode), {}),
    }
    built = {}
    for name in panel.probes:
        if (name == "gradients" and not sites.feeders) or (name == "ics" and not ics_sites):
            continue  # no site has a single feeding layer: noted in sites.skipped
        if name == "activations" and not sites.channels:
            continue
        built[name] = makers[name]()
    return built
