"""Santurkar et al. 2018, Figures 4, 10 and 11: the landscape along the gradient (§2.5).

At every probed step t, with g = ∇L_B(w_t) on the training batch B, the run steps to
w_t − ηg for each η = multiplier × LR and records, with :class:`bnlab.probes.LandscapeProbe`
(BN with batch statistics; running statistics, noise and gradients left as found):

* the loss band {L_B(w_t − ηg)} (Figs. 4a, 10a);
* gradient predictiveness {‖g − ∇L_B(w_t − ηg)‖₂} (Figs. 4b, 10b; per η for Fig. 11);
* effective β-smoothness max_η ‖g − ∇L_B(w_t − ηg)‖₂ / ‖ηg‖₂ (Figs. 4c, 10c).

Two setups, Standard and +BN each: VGG (the shared setup) at LR 0.1 with η ∈ {0.5, 1, 2, 4} ×
LR (the paper's [1/2, 4]; the grid is not stated) and the DLN at LR 1e-6 with η on a
half-decade grid over the paper's [1/100, 30] × LR. ``multipliers`` is set per net by the
grid (``--set multipliers=...`` replaces both). The card is
:data:`bnlab.recipes.santurkar2018.measures.LANDSCAPE`; claims c09–c11 read the VGG runs
(Fig. 4; PAPERS.md §8 claims 9–11), the DLN runs are their details (Fig. 10).
``santurkar2018.lp_landscape`` runs the same config for the ℓp norms: its Standard and BN
runs are these (same run keys).

Command: ``bnlab run santurkar2018.landscape --scale quick --data paper --executor process
--workers 2``.

Scales (2 nets × 2 norms × 3 seeds = 12 runs):

* ``smoke``: a few steps: seconds.
* ``quick``: VGG as the shared quick setup of ``santurkar2018.vgg`` (vgg16 at width 1/8,
  10,000 CIFAR-10 images, 700 steps: without BN the network leaves its initial plateau only
  after a few hundred steps) with the probe every 25 (MNIST-1D: 150 steps); the DLN at the
  paper's size for 2,000 steps with the probe every 100 (MNIST-1D label: 300). At this scale
  the effects show as spikes, not as the paper's two orders of magnitude. Measured:
  :data:`QUICK_RUNTIME`.
* ``paper``: VGG 15,000 steps with the probe every 10 (each costs k + 1 = 5 forward and
  backward passes: about 5 training steps, +50%), the DLN 10,000 steps with the probe every
  10 (9 passes: +90%); expected about 15 min on one H200 for the grid (not measured).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bnlab.experiments.harness import RunEnv, Training
from bnlab.experiments.recipe import Preset, Recipe, register_recipe
from bnlab.experiments.santurkar2018.dln import VggDlnConfig, training
from bnlab.probes import LandscapeProbe, Schedule
from bnlab.recipes.santurkar2018.measures import DLN_MULTIPLIERS, LANDSCAPE, VGG_MULTIPLIERS
from bnlab.sweep.config import PosFloat, PosInt

__all__ = ["PAPER", "PRESETS", "QUICK", "QUICK_RUNTIME", "RECIPE", "SMOKE", "LandscapeConfig",
           "build", "grid"]

#: Measured quick-scale wall time of the whole grid, 2 workers on a 2-core CPU.
QUICK_RUNTIME = (
    "--data paper: 5 min 33 s wall on 2 cores shared with one other job (535 s user + 32 s "
    "system CPU for the 12 runs), so about 4.7 min on a quiet 2-core machine; --data "
    "mnist1d: see the README (part of make reproduce)")


@dataclass(frozen=True)
class LandscapeConfig(VggDlnConfig):
    """One run of Figs. 4/10/11 or 12/13 (the grid sweeps ``net``, ``norm``, ``lr``)."""

    multipliers: tuple[PosFloat, ...] = VGG_MULTIPLIERS  # η/LR; paper: [1/2, 4] VGG, set per net
    landscape_every: PosInt = 10  # paper: "every step"; the issue: every 10 or denser (VGG)
    landscape_dln_every: PosInt = 10  # paper: "every step" (DLN)


def grid(norms: tuple[str, ...]) -> tuple[dict[str, tuple], ...]:
    """The grid of ``norms`` on both setups at the paper's learning rates and η ranges."""
    return (
        {"net": ("vgg",), "norm": norms, "lr": (0.1,),  # paper: Fig. 4, LR 0.1
         "multipliers": (VGG_MULTIPLIERS,)},
        {"net": ("dln",), "norm": norms, "lr": (1e-6,),  # paper: Fig. 10, LR 1e-6
         "multipliers": (DLN_MULTIPLIERS,)},
    )


PAPER = LandscapeConfig()
GRID = grid(("none", "bn"))
QUICK = replace(PAPER, width=0.125, train_per_class=1_000, steps=700, steps_mnist1d=150,
                eval_every=50, acc_examples=1_024, test_examples=1_000, landscape_every=25,
                dln_steps=2_000, dln_mnist1d_steps=300, landscape_dln_every=100)
SMOKE = replace(QUICK, steps=4, steps_mnist1d=0, eval_every=2, log_every=2, landscape_every=2,
                acc_examples=128, test_examples=200, train_per_class=20, dln_steps=4,
                dln_mnist1d_steps=0, landscape_dln_every=2, dln_eval_every=2)
PRESETS = {"paper": Preset(PAPER, GRID), "quick": Preset(QUICK, GRID),
           "smoke": Preset(SMOKE, GRID)}


def build(cfg: LandscapeConfig, env: RunEnv) -> Training:
    """The VGG or DLN run with the landscape probed along −g."""
    every = cfg.landscape_every if cfg.net == "vgg" else cfg.landscape_dln_every
    probe = LandscapeProbe(cfg.multipliers, schedule=Schedule(every=every))
    return training(cfg, env, [probe])


RECIPE = register_recipe(Recipe(LANDSCAPE, PRESETS, build))
