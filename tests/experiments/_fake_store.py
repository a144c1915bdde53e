"""A fake store for any recipe, generated from its card and its smoke grid.

Every run of the recipe's grid (at smoke sizes, labelled with the requested scale) stores
every quantity its card declares, at a few steps, with random values of the declared
shape. Claims and figures must be able to read such a store: if one reads a name or shape
the card does not declare, it fails here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bnlab.experiments import get_recipe
from bnlab.recipes import COMMON
from bnlab.results import Store

STEPS = (0, 10, 20, 30, 40, 50, 60, 70)


def fake_store(out: Path, recipe: str, *, seeds=(0, 1, 2), scale: str = "quick",
               data: str = "mnist1d", rng_seed: int = 0) -> Store:
    """Write one finished run per grid point and seed; return the open store."""
    rec = get_recipe(recipe)
    plan = rec.plan("smoke", data=data, seeds=list(seeds))
    rng = np.random.default_rng(rng_seed)
    store = Store(out)
    for spec in plan.specs:
        config = {**spec.config, "scale": scale, "seed": spec.seed}
        run = store.register_run(spec.key + scale, rec.name, config, spec.seed)
        store.start_run(run, resumed_from=None, provenance={"device": "cpu"})
        for q in rec.card.stored:
            if q in COMMON:
                continue
            for name in q.examples():
                if q.kind == "metric":
                    store.log_metrics(run, [(s, name, q.constant if q.constant is not None
                                             else float(rng.uniform(0.05, 0.95)))
                                            for s in STEPS])
                else:
                    shape = q.shape_for(config)
                    store.log_arrays(run, [(s, name, rng.uniform(0.05, 0.95, size=shape))
                                           for s in STEPS])
        store.finish_run(run, "finished")
    return store
