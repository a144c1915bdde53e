"""Plan and run recipes: scale preset + overrides → run grid → sweep."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bnlab.experiments.registry import Recipe, get_recipe, list_recipes
from bnlab.sweep import RunSpec, SweepSummary, execute
from bnlab.sweep.config import apply_overrides

__all__ = ["describe_recipes", "parse_seeds", "plan", "run_recipes"]


def parse_seeds(seeds: str | int | Sequence[int] | None, default: int) -> list[int]:
    """``None`` → ``range(default)``; ``"3"`` or ``3`` → ``[0, 1, 2]``; ``"0,5"`` → ``[0, 5]``."""
    if seeds is None:
        return list(range(default))
    if isinstance(seeds, int):
        values: list[int] = list(range(seeds))
    elif isinstance(seeds, str):
        try:
            parts = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise ValueError(
                f"bad --seeds {seeds!r}: give a count such as 3 or a list such as 0,1,2"
            ) from None
        values = list(range(parts[0])) if len(parts) == 1 and "," not in seeds else parts
    else:
        values = [int(s) for s in seeds]
    if not values or any(s < 0 for s in values):
        raise ValueError(f"bad --seeds {seeds!r}: need at least one seed, all >= 0")
    return values


def plan(
    name: str,
    *,
    scale: str = "quick",
    data: str = "mnist1d",
    seeds: str | int | Sequence[int] | None = None,
    sets: Sequence[str] = (),
    config_file: Path | None = None,
) -> tuple[Recipe, Any, list[RunSpec]]:
    """The recipe, its validated config and its run grid, without running anything."""
    recipe = get_recipe(name)
    if scale not in recipe.presets:
        raise ValueError(f"unknown scale {scale!r}; valid scales: {', '.join(recipe.presets)}")
    base = recipe.presets[scale]
    cfg = apply_overrides(base, [f"data={data}", *sets], yaml_path=config_file)
    specs = recipe.expand(cfg, parse_seeds(seeds, recipe.default_seeds[scale]))
    return recipe, cfg, specs


def run_recipes(
    names: Sequence[str] | None,
    *,
    scale: str = "quick",
    data: str = "mnist1d",
    data_dir: Path | None = None,
    out: Path = Path("bnlab_out"),
    seeds: str | int | Sequence[int] | None = None,
    sets: Sequence[str] = (),
    config_file: Path | None = None,
    executor: str = "serial",
    workers: int = 2,
    retry_failed: bool = False,
    progress: bool = True,
) -> list[SweepSummary]:
    """Run the grids of ``names`` (every registered recipe when ``None``) into ``out``.

    Every recipe is planned (and its overrides validated) before the first run starts, so a
    typo fails fast. Finished runs already in ``out`` are skipped; unfinished ones resume.
    """
    if data_dir is not None:
        # Workers are separate processes: the data location travels in the environment.
        os.environ["BNLAB_DATA"] = str(Path(data_dir).resolve())
    plans = [
        plan(n, scale=scale, data=data, seeds=seeds, sets=sets, config_file=config_file)
        for n in (names or list_recipes())
    ]
    summaries = []
    for recipe, _cfg, specs in plans:
        if progress:
            print(f"{recipe.name}: {len(specs)} runs at {scale} scale "
                  f"({recipe.paper}, {recipe.figure})")
        summaries.append(
            execute(specs, out, recipe.run, executor=executor, workers=workers,
                    retry_failed=retry_failed, progress=progress)
        )
    return summaries


def describe_recipes() -> str:
    """A table of the registered recipes for ``bnlab list``."""
    lines = []
    for name in list_recipes():
        r = get_recipe(name)
        lines.append(f"{name}\n  {r.paper}, {r.figure}: {r.summary}\n"
                     f"  scales: {', '.join(r.presets)}; quick scale: {r.quick_runtime}\n"
                     f"  data: {r.data}")
    return "\n".join(lines)
