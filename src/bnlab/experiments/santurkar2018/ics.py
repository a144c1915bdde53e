"""Santurkar et al. 2018, Figure 3: gradient-based internal covariate shift (PAPERS.md §2.4).

Definition 2.1: for layer i at step t, G is the gradient of the loss w.r.t. layer i's weight
and G′ the same gradient after layers 1 … i−1 (only) have taken this step's update, on the
same batch; the recipe stores ‖G − G′‖₂ and cos∠(G, G′) with
:class:`bnlab.probes.ICSProbe` (the update is a copy of the run's own SGD step; BN uses batch
statistics). Two setups, Standard and +BN each:

* VGG (Fig. 3a): layers #5 and #10 (conv 5 and conv 10) at LR 0.1 and 0.01, with training
  accuracy; the shared VGG setup (:mod:`~bnlab.experiments.santurkar2018.common`).
* DLN (Fig. 3b): layers #9 and #17 at LR 1e-6 and 1e-7, with the training loss (the summed
  squared error; :mod:`~bnlab.experiments.santurkar2018.dln`).

The card is :data:`bnlab.recipes.santurkar2018.measures.ICS`; claim c08 reads the DLN.

Command: ``bnlab run santurkar2018.ics --scale quick --data paper --executor process
--workers 2``.

Scales (2 nets × 2 norms × 2 LRs × 3 seeds = 24 runs):

* ``smoke``: a few steps of each: seconds.
* ``quick``: VGG as the shared quick setup (vgg16 at width 1/8, 10,000 class-balanced
  CIFAR-10 images) for 300 steps with ICS every 25 (MNIST-1D: 100 steps); the DLN at the
  paper's size for 2,000 steps (MNIST-1D label: 500) with ICS every 100. Measured: see
  :data:`QUICK_RUNTIME`.
* ``paper``: VGG 15,000 steps with ICS every 10 steps (each costs about 2.2 training steps:
  +22%), DLN 10,000 steps with ICS every 100; expected about 30 min on one H200 for the
  grid (bnlab's loop: 5.5 ms a VGG step with BN; not measured).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bnlab.experiments.harness import RunEnv, Training
from bnlab.experiments.recipe import Preset, Recipe, register_recipe
from bnlab.experiments.santurkar2018.dln import VggDlnConfig, training
from bnlab.probes import ICSProbe, Schedule
from bnlab.recipes.santurkar2018.measures import ICS, ICS_LAYERS_DLN, ICS_LAYERS_VGG
from bnlab.sweep.config import PosInt

__all__ = ["GRID", "PAPER", "PRESETS", "QUICK", "QUICK_RUNTIME", "RECIPE", "SMOKE",
           "ICSConfig", "build"]

#: Measured quick-scale wall time of the whole grid, 2 workers on a 2-core CPU.
QUICK_RUNTIME = (
    "--data paper: 9 min 17 s wall on 2 cores shared with make reproduce (518 s user + "
    "34 s system CPU for the 24 runs), so about 4.6 min on a quiet 2-core machine; --data "
    "mnist1d: see the README (part of make reproduce)")


@dataclass(frozen=True)
class ICSConfig(VggDlnConfig):
    """One run of Fig. 3 (the grid sweeps ``net``, ``norm`` and ``lr``)."""

    ics_layers_vgg: tuple[PosInt, ...] = ICS_LAYERS_VGG  # paper: Fig. 3a, layers #5, #10
    ics_layers_dln: tuple[PosInt, ...] = ICS_LAYERS_DLN  # paper: Fig. 3b, layers #9, #17
    ics_every: PosInt = 10  # not stated (plots look dense); PAPERS.md §8 c8: every 10 (VGG)
    ics_dln_every: PosInt = 100  # PAPERS.md §8 claim 8: every 100 steps (DLN)


PAPER = ICSConfig()
GRID = (
    {"net": ("vgg",), "norm": ("none", "bn"), "lr": (0.1, 0.01)},  # paper: Fig. 3a
    {"net": ("dln",), "norm": ("none", "bn"), "lr": (1e-6, 1e-7)},  # paper: Fig. 3b
)
QUICK = replace(PAPER, width=0.125, train_per_class=1_000, steps=300, steps_mnist1d=100,
                eval_every=50, acc_examples=1_024, test_examples=1_000, ics_every=25,
                dln_steps=2_000, dln_mnist1d_steps=500)
SMOKE = replace(QUICK, steps=4, steps_mnist1d=0, eval_every=2, log_every=2, ics_every=2,
                acc_examples=128, test_examples=200, train_per_class=20, dln_steps=4,
                dln_mnist1d_steps=0, ics_dln_every=2)
PRESETS = {"paper": Preset(PAPER, GRID), "quick": Preset(QUICK, GRID),
           "smoke": Preset(SMOKE, GRID)}


def build(cfg: ICSConfig, env: RunEnv) -> Training:
    """The VGG or DLN run with Definition 2.1 measured at the figure's layers."""
    if cfg.net == "vgg":
        probe = ICSProbe(cfg.ics_layers_vgg, schedule=Schedule(every=cfg.ics_every))
    else:
        probe = ICSProbe(cfg.ics_layers_dln, schedule=Schedule(every=cfg.ics_dln_every))
    return training(cfg, env, [probe])


RECIPE = register_recipe(Recipe(ICS, PRESETS, build))
