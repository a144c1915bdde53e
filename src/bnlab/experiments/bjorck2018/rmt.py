"""Bjorck et al. 2018, §4 and Fig. 7: products of random matrices are ill-conditioned.

PAPERS.md §3.10. The paper contrasts deep unnormalized networks with random-matrix theory:
a product of M independent N×N Gaussian matrices with N(0, 1/N) entries keeps its mean
squared singular value at 1, but its singular values spread out with M: a few grow towards
the edge (M+1)^((M+1)/2) / M^(M/2) (2, ≈ 3.08 and ≈ 3.86 for M = 1, 3, 5: the
Fuss–Catalan law of the squared singular values, :func:`bnlab.recipes.bjorck2018.product_edge`)
while many collapse towards 0, so the product is ever worse conditioned. Fig. 7 shows
histograms for M = 1, 3, 5 [SEEN]; N is NOT SEEN (PAPERS.md §8 claim 22: N ≈ 1000).

Each run draws fresh matrices for every M (float64, so the smallest singular values of a
product of five are resolved) and stores all singular values, the largest, the edge, the
fraction below ``small_sv`` = 0.1 (PAPERS.md §8 claim 22) and log10 of the condition
number. No dataset: ``--data`` is ignored and recorded as ``none``.

Command: ``bnlab run bjorck2018.rmt --scale quick``.

Scales (3 seeds; one run per seed holds every M):

* ``smoke``: N = 64: well under a second.
* ``quick`` = ``paper``: N = 1,000: 21 s wall for the 3 runs (the start of ``bnlab``
  included) on 2 cores shared with other jobs (load average ≈ 5); 11.5 s of CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from bnlab.experiments.harness import LogFn, Measure, RunEnv
from bnlab.experiments.recipe import Preset, Recipe, RecipeConfig, register_recipe
from bnlab.recipes.bjorck2018 import (
    RMT,
    SV,
    SV_CONDITION,
    SV_EDGE,
    SV_FRAC_SMALL,
    SV_MAX,
    product_edge,
)
from bnlab.sweep.config import PosFloat, PosInt

__all__ = ["PAPER", "PRESETS", "RECIPE", "RmtConfig", "build", "product_singular_values"]


@dataclass(frozen=True)
class RmtConfig(RecipeConfig):
    """One draw of every product (seeds give independent draws)."""

    matrix_size: PosInt = 1000  # N NOT SEEN; PAPERS.md §8 claim 22: N ≈ 1000
    products: tuple[PosInt, ...] = (1, 3, 5)  # Fig. 7: 1, 3 and 5 factors [SEEN]
    small_sv: PosFloat = 0.1  # PAPERS.md §8 claim 22: "fraction of singular values < 0.1"


PAPER = RmtConfig()
PRESETS = {
    "paper": Preset(PAPER),
    "quick": Preset(PAPER),
    "smoke": Preset(replace(PAPER, matrix_size=64)),
}


def product_singular_values(n: int, m: int, gen: torch.Generator) -> np.ndarray:
    """Singular values (descending) of W_m ⋯ W_1, each W_k with i.i.d. N(0, 1/n) entries.

    Args:
        n: the matrix size N.
        m: the number of factors M.
        gen: the generator the entries are drawn from.

    Returns:
        (n,) float64 array.
    """
    product = torch.eye(n, dtype=torch.float64)
    for _ in range(m):
        w = torch.randn(n, n, generator=gen, dtype=torch.float64) / math.sqrt(n)  # (N, N)
        product = w @ product
    return torch.linalg.svdvals(product).numpy()


def _measure(cfg: RmtConfig, env: RunEnv, log: LogFn) -> None:
    for m in cfg.products:
        sv = product_singular_values(cfg.matrix_size, m, env.generator(m))  # (N,), descending
        log(0, SV.key(m=m), sv)
        log(0, SV_MAX.key(m=m), float(sv[0]))
        log(0, SV_EDGE.key(m=m), product_edge(m))
        log(0, SV_FRAC_SMALL.key(m=m), float(np.mean(sv < cfg.small_sv)))
        log(0, SV_CONDITION.key(m=m), float(np.log10(sv[0] / sv[-1])))


def build(cfg: RmtConfig, env: RunEnv) -> Measure:
    """A measure-only run on random matrices (CPU, float64)."""
    return Measure(lambda log: _measure(cfg, env, log))


RECIPE = register_recipe(Recipe(RMT, PRESETS, build))
