"""The shared VGG-on-CIFAR-10 setup of Santurkar et al. 2018 (PAPERS.md §2.1).

Every VGG experiment of the paper (Figs. 1, 2, 3, 4, 5a, 6, 8, 12) trains one network one
way; this module is that setup, used by every ``santurkar2018`` VGG recipe: a config
(:class:`VggConfig`, which recipes subclass to add their probes' fields), the data
(:func:`load_data`), the model (:func:`build_model`) and the training job
(:func:`vgg_training`). Recipes that ask for the same config get the same run key, so a run
is stored once.

Paper settings (App. A.1), each a field with its source:

* "VGG-like network": ``vgg16`` (13 conv layers, FC 512-512-10), a norm before every ReLU
  at 15 sites, so the paper's layer numbers #2 … #13 are conv layers 2 … 13
  (:data:`bnlab.recipes.santurkar2018.common.SITE_MAP`).
* plain SGD (momentum and weight decay not stated: none), batch 128, constant LR 0.1,
  15,000 steps, Glorot init (biases 0), no data augmentation.
* Not stated (PAPERS.md §2.8), chosen here as documented options: the input
  normalization (per-channel standardization with the training statistics), BN momentum
  and ε (PyTorch's 0.1 and 1e-5), where the noise enters (after γ, β; the layer's
  default).

Measured by every VGG run: training accuracy on a fixed training sample in training mode
(what the training objective sees: batch statistics, noise drawn) and in eval mode, and
test accuracy (eval mode); names on :mod:`bnlab.recipes.santurkar2018.common`.

Quick-scale reductions are ``replace()`` diffs of these fields in each recipe's presets
(``width``, ``train_per_class``, ``steps``, ``steps_mnist1d``, ``acc_examples``,
``test_examples``); each recipe states them in its docstring and card.

Example:
    >>> cfg = replace(VggConfig(), width=0.125, steps=500)      # doctest: +SKIP
    >>> run = build_model(cfg, env, load_data(cfg, env))          # doctest: +SKIP
    >>> job = vgg_training(cfg, env, run, probes=[...])           # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import nn

from bnlab.data import Loader, balanced_subset, channel_stats, standardize
from bnlab.experiments.harness import RunEnv, Training
from bnlab.experiments.recipe import RecipeConfig
from bnlab.models import create_model, norm_sites
from bnlab.probes import ActivationStatsProbe, Probe, Schedule
from bnlab.probes._state import bn_mode, no_trace
from bnlab.recipes.santurkar2018.common import TEST_ACC, TEST_N, TRAIN_ACC, TRAIN_ACC_EVAL
from bnlab.recipes.santurkar2018.vgg import PERCENTILES
from bnlab.sweep.config import ConfigError, NonNegInt, PosFloat, PosInt
from bnlab.train import SGD, build_optimizer

__all__ = [
    "LP_NORMS",
    "NOISE_NORMS",
    "NUM_CLASSES",
    "Accuracies",
    "VggConfig",
    "VggData",
    "VggRun",
    "build_model",
    "load_data",
    "norm_kwargs",
    "run_steps",
    "sampled_units",
    "site_probe",
    "train_mode_accuracy",
    "vgg_training",
]

NUM_CLASSES = 10  # CIFAR-10 and MNIST-1D
LP_NORMS = ("l1", "l2", "linf")
NOISE_NORMS = ("noisy_bn", "noise")
Norm = Literal["none", "bn", "noisy_bn", "noise", "l1", "l2", "linf"]
# Generator tags (RunEnv.generator): the same picks for every condition of one seed.
_TAG_ACC, _TAG_TEST, _TAG_UNITS = 11, 12, 13
_EVAL_CHUNK = 1_000  # inputs per eval-mode forward pass (memory only; no effect on results)


@dataclass(frozen=True)
class VggConfig(RecipeConfig):
    """One VGG run of Santurkar et al. (the recipes sweep ``norm``, ``lr``, ``centered``)."""

    arch: Literal["vgg16", "vgg11"] = "vgg16"  # paper: "VGG-like", layers #2…#13 (§2.1)
    width: PosFloat = 1.0  # paper: not stated; VGG-16's 64…512 channels and FC 512
    norm: Norm = "bn"  # "none" is the paper's "Standard" network
    centered: bool = False  # ℓp only: I2 (scale of x − μ) instead of I1 (PAPERS.md §2.6)
    noise_n_mu: PosFloat = 0.5  # paper: n_μ = 0.5 (App. A.2.1, Algorithm 1)
    noise_n_sigma: PosFloat = 1.25  # paper: n_σ = 1.25
    noise_r_mu: PosFloat = 0.1  # paper: r_μ = 0.1
    noise_r_sigma: PosFloat = 0.1  # paper: r_σ = 0.1 (a std; PAPERS.md §2.3)
    init: Literal["glorot", "kaiming"] = "glorot"  # paper: Glorot (App. A.1); biases 0
    lr: PosFloat = 0.1  # paper: 0.1, constant (App. A.1)
    batch_size: PosInt = 128  # paper: 128 (App. A.1)
    steps: PosInt = 15_000  # paper: 15k steps, "training accuracy plateaus" (App. A.1)
    steps_mnist1d: NonNegInt = 0  # --data mnist1d runs this many steps instead (0: steps)
    train_per_class: NonNegInt = 0  # CIFAR-10 training images per class; 0: all 5,000
    input_norm: Literal["standardize", "none"] = "standardize"  # not stated (§2.8)
    acc_examples: PosInt = 2_048  # fixed training sample behind train_acc (not stated)
    test_examples: NonNegInt = 0  # test inputs behind test_acc; 0: the whole test split
    eval_every: PosInt = 500  # accuracy curves (the paper's plots look dense; not stated)
    log_every: PosInt = 100
    checkpoint_every: NonNegInt = 5_000

    def __post_init__(self) -> None:
        if self.centered and self.norm not in LP_NORMS:
            raise ConfigError(f"centered=True is an ℓp option ({', '.join(LP_NORMS)}); "
                              f"norm={self.norm!r} has none: drop centered or pick an ℓp norm")
        if self.noise_n_sigma < 1:
            raise ConfigError(f"noise_n_sigma={self.noise_n_sigma} must be >= 1 (σ_t ~ U(1, "
                              "n_sigma), Algorithm 1); the paper uses 1.25")
        if self.acc_examples < self.batch_size:
            raise ConfigError(f"acc_examples={self.acc_examples} must be at least "
                              f"batch_size={self.batch_size} (train_acc uses whole batches)")


def norm_kwargs(cfg: VggConfig) -> dict[str, Any]:
    """The options of ``cfg.norm``: the noise parameters, or ℓp's ``centered``."""
    if cfg.norm in NOISE_NORMS:
        return {"n_mu": cfg.noise_n_mu, "n_sigma": cfg.noise_n_sigma, "r_mu": cfg.noise_r_mu,
                "r_sigma": cfg.noise_r_sigma}
    if cfg.norm in LP_NORMS:
        return {"centered": cfg.centered}
    return {}


def run_steps(cfg: VggConfig, env: RunEnv) -> int:
    """The run's optimizer steps: ``steps_mnist1d`` on MNIST-1D when set, else ``steps``."""
    return cfg.steps_mnist1d if env.data == "mnist1d" and cfg.steps_mnist1d else cfg.steps


@dataclass(frozen=True)
class VggData:
    """One run's tensors, on the run's device, inputs normalized.

    Attributes:
        x: training inputs (N, C, *S); y: their labels (N,).
        x_acc: the fixed training sample behind ``train_acc`` (acc_examples, C, *S).
        y_acc: its labels.
        x_test: the test inputs behind ``test_acc``; y_test: their labels.
    """

    x: torch.Tensor
    y: torch.Tensor
    x_acc: torch.Tensor
    y_acc: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _sample(x: torch.Tensor, y: torch.Tensor, n: int, gen: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random rows of ``(x, y)`` (all of them, permuted, if ``n >= len``)."""
    idx = torch.randperm(len(x), generator=gen)[:n].to(x.device)
    return x[idx], y[idx]


def load_data(cfg: VggConfig, env: RunEnv) -> VggData:
    """Training set (a class-balanced subset when ``train_per_class``), samples, test set.

    CIFAR-10 in ``BNLAB_DATA`` is sorted by class, so the subset is drawn per class with
    :func:`bnlab.data.balanced_subset` (seeded by the run's seed); MNIST-1D always uses
    its whole 4,000-signal training split. The same seed gives every condition the same
    subset, accuracy sample and test inputs.
    """
    x, y = env.load("train")
    x_test, y_test = env.load("test")
    if env.data == "paper" and cfg.train_per_class:
        x, y = balanced_subset(x, y, cfg.train_per_class, seed=env.seed)
    if cfg.test_examples:
        x_test, y_test = _sample(x_test, y_test, cfg.test_examples, env.generator(_TAG_TEST))
    if cfg.input_norm == "standardize":
        mean, std = channel_stats(x)  # (C,), (C,): the training inputs' statistics
        x, x_test = standardize(x, mean, std), standardize(x_test, mean, std)
    x_acc, y_acc = _sample(x, y, cfg.acc_examples, env.generator(_TAG_ACC))
    return VggData(x, y, x_acc, y_acc, x_test, y_test)


@dataclass
class VggRun:
    """The model of one run and its data."""

    model: nn.Module
    data: VggData


def build_model(cfg: VggConfig, env: RunEnv, data: VggData) -> VggRun:
    """``cfg.arch`` at ``cfg.width`` with ``cfg.norm`` at every site, on the run's device."""
    model = create_model(cfg.arch, norm=cfg.norm, norm_kwargs=norm_kwargs(cfg),
                         in_shape=tuple(data.x.shape[1:]), num_classes=NUM_CLASSES,
                         width=cfg.width, init=cfg.init)
    return VggRun(env.place(model), data)


def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int) -> int:
    """Correct top-1 predictions over ``x`` in chunks of ``chunk`` inputs."""
    hits = sum((model(xc).argmax(1) == yc).sum() for xc, yc in zip(x.split(chunk),
                                                                      y.split(chunk),
                                                                      strict=True))
    return int(hits)


def train_mode_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        batch_size: int) -> float:
    """Accuracy with every norm as in training (batch statistics, noise drawn), no trace.

    The inputs are cut into whole batches of ``batch_size`` (a remainder is dropped, as
    the loader drops it) so each forward normalizes over a training-sized batch. Running
    statistics, noise streams and RNG are restored afterwards, so the run trains exactly
    as if nothing had been measured.
    """
    n = len(x) // batch_size * batch_size
    with torch.no_grad(), no_trace(model), bn_mode(model, "train"):
        return _correct(model, x[:n], y[:n], batch_size) / n


def eval_mode_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy with the running statistics and no noise (norms in eval mode)."""
    with torch.no_grad(), bn_mode(model, "eval"):
        return _correct(model, x, y, _EVAL_CHUNK) / len(x)


@dataclass(frozen=True)
class Accuracies:
    """``evaluate(model)`` for the loop: train_acc, train_acc_eval, test_acc, test_n.

    Attributes:
        data: the run's data (the accuracy sample and the test inputs).
        batch_size: the training batch size (train_acc normalizes over batches of it).
    """

    data: VggData
    batch_size: int

    def __call__(self, model: nn.Module) -> dict[str, float]:
        """The four metrics of ``model`` (the loop calls it in eval mode, no autograd)."""
        d = self.data
        return {
            TRAIN_ACC.name: train_mode_accuracy(model, d.x_acc, d.y_acc, self.batch_size),
            TRAIN_ACC_EVAL.name: eval_mode_accuracy(model, d.x_acc, d.y_acc),
            TEST_ACC.name: eval_mode_accuracy(model, d.x_test, d.y_test),
            TEST_N.name: float(len(d.y_test)),
        }


def vgg_training(cfg: VggConfig, env: RunEnv, run: VggRun,
                 probes: tuple[Probe, ...] | list[Probe] = ()) -> Training:
    """Plain SGD at a constant LR on shuffled batches (no augmentation), with accuracies."""
    data = run.data
    return Training(
        run.model, Loader(data.x, data.y, cfg.batch_size, seed=env.seed),
        nn.functional.cross_entropy,
        build_optimizer(SGD(lr=cfg.lr), run.model.parameters()), steps=run_steps(cfg, env),
        evaluate=Accuracies(data, cfg.batch_size), eval_every=cfg.eval_every,
        probes=list(probes), log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every)


def sampled_units(model: nn.Module, layers: tuple[int, ...], count: int, env: RunEnv,
                  tag: int = 0) -> dict[int, list[int]]:
    """``count`` random units (channels) of each norm site in ``layers``, fixed per seed.

    Every condition of one seed (Standard, BN, noisy BN …) gets the same units, since
    the sites have the same widths whatever the norm; ``tag`` separates independent picks
    (e.g. the histogram units from the drift units).

    Raises:
        ConfigError: if a layer is not a site or has fewer than ``count`` units (the card
            declares ``count`` units per layer, so it cannot be silently reduced).
    """
    sites = norm_sites(model)
    picks = {}
    for layer in layers:
        if not 1 <= layer <= len(sites):
            raise ConfigError(f"layer #{layer} is not a norm site of this model (1 … "
                              f"{len(sites)}); pick layers in that range")
        feeding = sites[layer - 1].layer  # the conv or linear layer before the norm
        width = getattr(feeding, "out_channels", None) or feeding.out_features
        if count > width:
            raise ConfigError(f"layer #{layer} has {width} units at this width, fewer than "
                              f"the {count} to sample; lower the unit count or raise width")
        gen = env.generator(_TAG_UNITS * 1_000 + tag * 100 + layer)
        picks[layer] = sorted(torch.randperm(width, generator=gen)[:count].tolist())
    return picks


def site_probe(layers: tuple[int, ...], units: dict[int, list[int]], *, bins: int,
               schedule: Schedule, prefix: str, percentiles: tuple[float, ...]
               ) -> ActivationStatsProbe:
    """Statistics of sampled units at the norm sites' output, training batch, train mode.

    What Santurkar et al. plot (§2.1, Figs. 1, 2, 6, 8): the distribution of the value that
    feeds the ReLU, per channel over batch × H × W (per unit over the batch for FC
    layers), in the pass that trains the network (the probe reads the step's own forward).
    """
    return ActivationStatsProbe(list(layers), units, where="post", bn_mode="train",
                                bins=bins, schedule=schedule, prefix=prefix,
                                percentiles=percentiles)


class HistogramFields(Protocol):
    """The config fields of a recipe that stores histograms over time (Figs. 1, 2, 6)."""

    hist_layers: tuple[int, ...]
    hist_units: int
    hist_bins: int
    hist_every: int


def histogram_probe(cfg: HistogramFields, model: nn.Module, env: RunEnv) -> ActivationStatsProbe:
    """The ``act/`` histograms and percentiles of ``cfg.hist_units`` sampled units per layer."""
    units = sampled_units(model, cfg.hist_layers, cfg.hist_units, env)
    return site_probe(cfg.hist_layers, units, bins=cfg.hist_bins,
                      schedule=Schedule(every=cfg.hist_every), prefix="act",
                      percentiles=PERCENTILES)
