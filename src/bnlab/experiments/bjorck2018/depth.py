"""Bjorck et al. 2018, Fig. 5: channel statistics against depth at initialization.

PAPERS.md §3.8. One forward pass of ResNet-110 on a batch of training images, with and
without BN (train mode): for layers 6, 18, …, 102 (every 12th conv layer [SEEN]) the
per-channel mean and std over batch × positions, summarized per layer as the mean over
channels of log10 |mean| and of log10 std, with the std over channels as Fig. 5's error
bars (:func:`bnlab.probes.depth_profile`, which also fits the line of log10 std against
the layer number: its slope and R² over these conv layers). Layer 110 of the figure is the
linear read-out, which has no norm site: its ten logits' means and stds over the batch
come from :func:`bnlab.probes.activation_stats` and are stored after the conv layers.

Where a layer's "output" is read is NOT STATED (PAPERS.md §3.8 [INFERRED]: the layer's
output). The default ``where="block_output"`` reads what the next layer receives after the
nonlinearity (and the residual sum, for a block's second conv), never a norm's own output,
which is 0/1 by construction; ``--set where=pre_norm`` reads the conv outputs instead. The
log base is NOT STATED: log10.

Command: ``bnlab run bjorck2018.depth --scale quick --data paper``.

Scales (2 networks × 3 seeds = 6 runs of one forward pass each, full ResNet-110):

* ``smoke``: 16 images, 1 seed: seconds.
* ``quick`` = ``paper``: measured on a 2-core machine shared with other jobs: 1 min 48 s
  wall on CIFAR-10 with ``--executor process --workers 2`` at a load average of 6–9 (two
  forward passes of ≈ 1.2 s of one core per run: well under a minute on 2 quiet cores);
  MNIST-1D: 11.5 s of CPU in all (37 s wall at a load average of 17).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from bnlab.experiments.bjorck2018.common import Init, Norm, centered_data, random_batch, resnet
from bnlab.experiments.harness import LogFn, Measure, RunEnv
from bnlab.experiments.recipe import Preset, Recipe, RecipeConfig, register_recipe
from bnlab.models import norm_sites
from bnlab.probes import activation_stats, depth_profile
from bnlab.recipes.bjorck2018 import (
    DEPTH,
    DEPTH_LAYER,
    DEPTH_LOG_MEAN,
    DEPTH_LOG_MEAN_SD,
    DEPTH_LOG_STD,
    DEPTH_LOG_STD_SD,
    DEPTH_R2,
    DEPTH_SLOPE,
)
from bnlab.sweep.config import PosInt

__all__ = ["PAPER", "PRESETS", "RECIPE", "DepthConfig", "build"]


@dataclass(frozen=True)
class DepthConfig(RecipeConfig):
    """One network at initialization (the grid sweeps ``norm``)."""

    norm: Norm = "bn"  # paper: with and without BN (Fig. 5)
    batch_size: PosInt = 128  # NOT SEEN; He et al.'s mini-batch
    depth_sites: tuple[PosInt, ...] = (6, 18, 30, 42, 54, 66, 78, 90, 102)  # Fig. 5 [SEEN]
    where: Literal["block_output", "pre_norm"] = "block_output"  # NOT STATED (docstring)
    init: Init = "kaiming"  # BN network: He init as in He et al. [17] [INFERRED]
    init_none: Init = "glorot"  # no-BN network: NOT STATED (see common.py)


PAPER = DepthConfig()
GRID = {"norm": ("bn", "none")}
PRESETS = {
    "paper": Preset(PAPER, GRID),
    "quick": Preset(PAPER, GRID),
    "smoke": Preset(replace(PAPER, batch_size=16), GRID),
}


def _log10_moments(values: np.ndarray) -> tuple[float, float]:
    """Mean and std over entries of log10(values), zeros left out (as the probe does)."""
    logs = np.log10(values[values > 0])
    return (float(logs.mean()), float(logs.std())) if logs.size else (np.nan, np.nan)


def _measure(cfg: DepthConfig, env: RunEnv, log: LogFn) -> None:
    x, y = centered_data(env)
    batch = random_batch(x, y, cfg.batch_size, env.generator(0))  # same images for both nets
    model = env.place(resnet("resnet110", cfg.norm, tuple(x.shape[1:]), init=cfg.init,
                             init_none=cfg.init_none))
    prof = depth_profile(model, batch, where=cfg.where, sites=list(cfg.depth_sites))
    logits = activation_stats(model, batch, ["fc"], where="post", percentiles=(50,),
                              bins=1)["fc"]  # per class over the batch: mean (10,), std (10,)
    log_std, log_std_sd = _log10_moments(logits.std)
    log_mean, log_mean_sd = _log10_moments(np.abs(logits.mean))
    readout = len(norm_sites(model)) + 1  # the read-out is the last weighted layer: 110
    log(0, DEPTH_LAYER.name, np.append(prof["depth"], readout))
    log(0, DEPTH_LOG_STD.name, np.append(prof["log10_std"], log_std))
    log(0, DEPTH_LOG_STD_SD.name, np.append(prof["log10_std_sd"], log_std_sd))
    log(0, DEPTH_LOG_MEAN.name, np.append(prof["log10_abs_mean"], log_mean))
    log(0, DEPTH_LOG_MEAN_SD.name, np.append(prof["log10_abs_mean_sd"], log_mean_sd))
    log(0, DEPTH_SLOPE.name, prof["slope"])
    log(0, DEPTH_R2.name, prof["r2"])


def build(cfg: DepthConfig, env: RunEnv) -> Measure:
    """A measure-only run: the network is built and measured inside ``run``."""
    return Measure(lambda log: _measure(cfg, env, log))


RECIPE = register_recipe(Recipe(DEPTH, PRESETS, build))
