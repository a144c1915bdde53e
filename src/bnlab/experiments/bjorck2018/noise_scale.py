"""Bjorck et al. 2018, §3: the SGD noise bound E‖α∇ℓ − α∇_SGD‖² ≤ α²C/|B|.

PAPERS.md §3.4. With ℓ = (1/N) Σ_i ℓ_i, ∇_SGD = (1/|B|) Σ_{i∈B} ∇ℓ_i and
C = (1/N) Σ_i ‖∇ℓ_i − ∇ℓ‖², the paper bounds the noise of one SGD update by α²C/|B|: a
larger learning rate α acts like a smaller batch. For a mini-batch of |B| draws *with*
replacement the bound is an equality (the mean of |B| i.i.d. vectors); *without*
replacement it is the equality times the finite-population factor (N − |B|)/(N − 1) ≤ 1.

At a fixed w (a small ReLU MLP at its initialization, PAPERS.md §8 claim 23: "logistic
regression or a small MLP on MNIST at a fixed w") the recipe computes the N per-example
gradients exactly (``torch.func.vmap`` of ``grad``), C, and for every |B| ∈ {8, 32, 128}
and α ∈ {0.01, 0.1} a Monte Carlo estimate of the expected noise from ``noise_draws``
random mini-batches of each sampling, with its standard error. Each draw's squared norm
is read from the centred Gram matrix K = (G − ∇ℓ)(G − ∇ℓ)ᵀ of the per-example gradients:
‖∇_SGD − ∇ℓ‖² = (1/|B|²) Σ_{i,j∈B} K_ij. Every (sampling, |B|, α) has its own draws, so
the six estimates of a sampling are independent.

Command: ``bnlab run bjorck2018.noise_scale --scale quick --data paper``.

Scales (3 seeds: the MLP's initialization, the N examples and the draws):

* ``smoke``: N = 64, 50 draws: a second.
* ``quick`` = ``paper``: N = 1,000 MNIST images, 4,000 draws each: 1 min 24 s wall for
  the 3 runs with ``--executor process --workers 2`` on 2 cores shared with other jobs
  (load average 5–6); on MNIST-1D 38 s of CPU in all (2 min 11 s wall at a load of 18).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from bnlab.data import balanced_subset
from bnlab.experiments.harness import LogFn, Measure, RunEnv
from bnlab.experiments.recipe import Preset, Recipe, RecipeConfig, register_recipe
from bnlab.models import create_model
from bnlab.recipes.bjorck2018 import (
    NOISE_BOUND,
    NOISE_C,
    NOISE_ESTIMATE,
    NOISE_SCALE,
    NOISE_SE,
    SAMPLINGS,
)
from bnlab.sweep.config import PosFloat, PosInt

__all__ = ["PAPER", "PRESETS", "RECIPE", "NoiseScaleConfig", "build", "centered_gram",
           "noise_draws"]


@dataclass(frozen=True)
class NoiseScaleConfig(RecipeConfig):
    """One fixed w and one set of N examples (seeds vary both and the draws)."""

    examples: PosInt = 1000  # N; PAPERS.md §8 claim 23 gives none ("at a fixed w")
    hidden: PosInt = 32  # "a small MLP" (PAPERS.md §8 claim 23): one ReLU layer of 32
    batch_sizes: tuple[PosInt, ...] = (8, 32, 128)  # PAPERS.md §8 claim 23
    alphas: tuple[PosFloat, ...] = (0.01, 0.1)  # PAPERS.md §8 claim 23
    noise_draws: PosInt = 4000  # Monte Carlo draws per (sampling, |B|, α)


PAPER = NoiseScaleConfig()
PRESETS = {
    "paper": Preset(PAPER),
    "quick": Preset(PAPER),
    "smoke": Preset(replace(PAPER, examples=160, batch_sizes=(8, 32), noise_draws=50)),
}


def per_example_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      chunk: int = 250) -> torch.Tensor:
    """∇_w ℓ_i for every example i, flattened: (N, P) in float64."""
    params = {n: p.detach().double() for n, p in model.named_parameters()}
    model = model.double()

    def loss_i(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])

    each = vmap(grad(loss_i), in_dims=(None, 0, 0))
    rows = []
    for xs, ys in zip(x.double().split(chunk), y.split(chunk), strict=True):
        g = each(params, xs, ys)  # name -> (chunk, *shape)
        rows.append(torch.cat([t.flatten(1) for t in g.values()], dim=1))  # (chunk, P)
    return torch.cat(rows)


def centered_gram(grads: torch.Tensor) -> torch.Tensor:
    """K = (G − mean G)(G − mean G)ᵀ for per-example gradients G (N, P): (N, N)."""
    centred = grads - grads.mean(dim=0, keepdim=True)
    return centred @ centred.T


def noise_draws(gram: torch.Tensor, batch: int, draws: int, with_replacement: bool,
                gen: torch.Generator) -> torch.Tensor:
    """‖∇_SGD − ∇ℓ‖² for ``draws`` random mini-batches of size ``batch``: (draws,).

    Each is (1/|B|²) Σ_{i,j∈B} K_ij with K the centred Gram matrix; ``replace`` draws
    the |B| indices independently, otherwise |B| distinct ones.
    """
    n = gram.shape[0]
    if with_replacement:
        idx = torch.randint(n, (draws, batch), generator=gen)  # (D, B)
    else:
        idx = torch.rand(draws, n, generator=gen).argsort(dim=1)[:, :batch]  # (D, B)
    block = gram[idx[:, :, None], idx[:, None, :]]  # (D, B, B)
    return block.sum(dim=(1, 2)) / batch**2


def _measure(cfg: NoiseScaleConfig, env: RunEnv, log: LogFn) -> None:
    x, y = env.load("train")
    x, y = balanced_subset(x.cpu(), y.cpu(), cfg.examples // 10, seed=env.seed)
    model = create_model("mlp", norm="none", in_shape=tuple(x.shape[1:]), num_classes=10,
                         widths=(cfg.hidden,), activation="relu", init="kaiming")
    gram = centered_gram(per_example_grads(model, x, y))  # (N, N)
    c = float(gram.diagonal().mean())  # C = (1/N) Σ_i ‖∇ℓ_i − ∇ℓ‖²
    shape = (len(SAMPLINGS), len(cfg.batch_sizes), len(cfg.alphas))
    est, se, bound = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for s, sampling in enumerate(SAMPLINGS):
        for b, size in enumerate(cfg.batch_sizes):
            for a, alpha in enumerate(cfg.alphas):
                gen = env.generator(1 + a + 100 * (b + 100 * s))  # independent draws each
                noise = alpha**2 * noise_draws(gram, size, cfg.noise_draws,
                                               sampling == "with_replacement", gen)
                est[s, b, a] = float(noise.mean())
                se[s, b, a] = float(noise.std() / cfg.noise_draws**0.5)
                bound[s, b, a] = alpha**2 * c / size
    log(0, NOISE_ESTIMATE.name, est)
    log(0, NOISE_SE.name, se)
    log(0, NOISE_BOUND.name, bound)
    log(0, NOISE_C.name, c)


def build(cfg: NoiseScaleConfig, env: RunEnv) -> Measure:
    """A measure-only run at the MLP's initialization (CPU, float64)."""
    return Measure(lambda log: _measure(cfg, env, log))


RECIPE = register_recipe(Recipe(NOISE_SCALE, PRESETS, build))
