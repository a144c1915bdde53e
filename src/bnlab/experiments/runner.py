"""Plan and run recipes: scale preset + overrides → run grid → sweep.

A recipe is named exactly (``ioffe2015.mnist``) or by its paper prefix (``ioffe2015``
selects every ``ioffe2015.*`` recipe): :func:`select_recipes`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from bnlab.errors import UserError
from bnlab.experiments.harness import resolve_device, run_spec
from bnlab.experiments.recipe import Plan, get_recipe, list_recipes
from bnlab.names import COMPILE_MODES, DEVICES, MAX_WORKERS
from bnlab.registry import UnknownNameError, normalize_name
from bnlab.sweep import SweepSummary, execute

__all__ = ["describe_recipes", "parse_seeds", "plan", "run_recipes", "select_recipes"]

# An upper bound on seeds and on how many a run may ask for: a seed is a 64-bit value
# (numpy, torch) and a list of them is held in memory.
_MAX_SEED = 2**63 - 1
_MAX_SEEDS = 10_000


def parse_seeds(seeds: str | int | Sequence[int] | None, default: int) -> list[int]:
    """``None`` → ``range(default)``; ``"3"`` or ``3`` → ``[0, 1, 2]``; ``"0,5"`` → ``[0, 5]``.

    Raises:
        UserError: for text that is not a count or a list of seeds, no seed, a negative
            seed, a seed past 2**63 − 1, or more than 10,000 seeds.
    """
    if seeds is None:
        return list(range(default))
    bad = UserError(f"bad --seeds {str(seeds)[:40]!r}: give a count such as 3 or a list "
                    f"such as 0,1,2 (at most {_MAX_SEEDS} seeds, each in [0, 2**63 - 1])")
    if isinstance(seeds, str):
        try:
            parts = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise bad from None
        as_count = len(parts) == 1 and "," not in seeds
    else:
        parts = [int(seeds)] if isinstance(seeds, int) else [int(s) for s in seeds]
        as_count = isinstance(seeds, int)
    if as_count:
        if not 1 <= parts[0] <= _MAX_SEEDS:
            raise bad
        return list(range(parts[0]))
    if not parts or len(parts) > _MAX_SEEDS or any(not 0 <= s <= _MAX_SEED for s in parts):
        raise bad
    return parts


def select_recipes(names: Sequence[str]) -> list[str]:
    """The recipes ``names`` select, in order, each once.

    A name that is a registered recipe selects it; otherwise it is a prefix and selects
    every recipe called ``<name>.<something>`` (``ioffe2015`` → ``ioffe2015.mnist``, …).

    Raises:
        UnknownNameError: a name that is neither a recipe nor a prefix of one; the message
            lists the recipes and the prefixes.
    """
    registered = list_recipes()
    chosen: dict[str, None] = {}
    for name in names:
        key = normalize_name(name)
        matches = [key] if key in registered else [r for r in registered
                                                    if r.startswith(key + ".")]
        if not matches:
            prefixes = sorted({r.split(".", 1)[0] for r in registered})
            raise UnknownNameError(f"unknown recipe {name!r}; valid recipes: "
                                   f"{', '.join(registered)}; or a paper prefix: "
                                   f"{', '.join(prefixes)}")
        chosen.update(dict.fromkeys(matches))
    return list(chosen)


def plan(
    name: str,
    *,
    scale: str = "quick",
    data: str = "mnist1d",
    seeds: str | int | Sequence[int] | None = None,
    sets: Sequence[str] = (),
    config_file: Path | None = None,
    device: str = "cpu",
    compile: str = "none",
) -> Plan[Any]:
    """The recipe's validated config and run grid at ``scale``, without running anything."""
    recipe = get_recipe(name)
    execution = {"device": device} if compile == "none" else {"device": device,
                                                              "compile": compile}
    return recipe.plan(scale, data=data, seeds=parse_seeds(seeds, recipe.seeds.get(scale, 3)),
                       sets=sets, config_file=config_file, execution=execution)


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
    device: str = "auto",
    compile: str = "none",
    pack: int = 4,
    checkpoint_root: Path | None = None,
    executor_options: Mapping[str, Any] | None = None,
    ddp: bool = False,
    bn_sync: str | None = None,
) -> list[SweepSummary]:
    """Run the grids of ``names`` (every registered recipe when ``None``) into ``out``.

    A name may be a paper prefix (``ioffe2015``): see :func:`select_recipes`.

    Every recipe is planned (and its overrides validated) before the first run starts, so a
    typo fails fast. Finished runs already in ``out`` are skipped; unfinished ones resume.
    With several recipes, every ``--set`` key must be a field of each of them.
    With ``executor="ray"`` the device is resolved by each run on its worker (the driver
    may have no GPU), and ``executor_options`` (``address``, ``cpus_per_run``,
    ``gpus_per_run``) place the runs (:mod:`bnlab.sweep.ray_executor`).
    With ``ddp`` (under torchrun) each run is trained by every rank together, with BN
    statistics ``bn_sync`` (``global`` by default), recorded in the runs' configs
    (:mod:`bnlab.experiments.ddp`).
    """
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise UserError(f"--data-dir {str(data_dir)!r} is not a folder; give the folder "
                            "that holds mnist.npz / cifar10.npz")
        # Workers are separate processes: the data location travels in the environment.
        os.environ["BNLAB_DATA"] = str(Path(data_dir).resolve())
    resolved = _device_for(executor, device, executor_options)
    _check_execution(resolved, compile, executor, pack)
    if bn_sync is not None and not ddp:
        raise UserError("--bn-sync applies to --ddp runs; add --ddp (under torchrun) or drop it")
    if ddp and executor != "serial":
        raise UserError(f"--ddp trains each run on every rank together; --executor {executor} "
                        "does not apply (leave it out)")
    if ddp and compile != "none":
        raise UserError("--compile graphs replays single-process steps; it does not apply to "
                        "--ddp runs (leave it out)")
    plans = [
        plan(n, scale=scale, data=data, seeds=seeds, sets=sets, config_file=config_file,
             device=resolved, compile=compile)
        for n in (select_recipes(names) if names else list_recipes())
    ]
    if ddp:
        return _run_ddp(plans, out, bn_sync or "global", resolved, scale=scale,
                        retry_failed=retry_failed, progress=progress,
                        checkpoint_root=checkpoint_root)
    summaries = []
    with _executor_session(executor, executor_options):
        for p in plans:
            _announce(p, scale, resolved, progress)
            summaries.append(
                execute(p.specs, out, run_spec, executor=executor,
                        workers=pack if executor == "packed" else workers,
                        retry_failed=retry_failed, progress=progress,
                        checkpoint_root=checkpoint_root, options=executor_options)
            )
    return summaries


def _executor_session(executor: str, options: Mapping[str, Any] | None
                      ) -> AbstractContextManager[None]:
    """Ray: one connection for every recipe of the call; other executors: nothing."""
    if executor != "ray":
        return nullcontext()
    from bnlab.sweep.ray_executor import ray_session

    return ray_session((options or {}).get("address"))


def _announce(p: Plan[Any], scale: str, device: str, progress: bool, extra: str = "") -> None:
    card = p.recipe.card
    if progress:
        print(f"{card.name}: {len(p.specs)} runs at {scale} scale on {device}{extra} "
              f"({card.paper}, {card.figure})")


def _run_ddp(plans: list[Plan[Any]], out: Path, bn_sync: str, device: str, *, scale: str,
             progress: bool, **execute_kw: Any) -> list[SweepSummary]:
    """Every plan's runs trained by all ranks together; rank 0 alone writes ``out``."""
    from bnlab.experiments import ddp

    ddp.ddp_options(bn_sync, 1)  # an unknown --bn-sync fails before joining the group
    rank, world = ddp.init_from_env(device)
    progress, summaries, abort = progress and rank == 0, [], True
    try:
        for p in plans:
            _announce(p, scale, device, progress, f", DDP over {world} ranks, BN {bn_sync}")
            specs = ddp.ddp_specs(p.specs, bn_sync, world)
            summaries.append(ddp.run_ddp_sweep(specs, out, run_spec, progress=progress,
                                               **execute_kw))
            if summaries[-1].failures:
                return summaries
        abort = False
        return summaries
    finally:
        ddp.shutdown(abort=abort)


def _device_for(executor: str, device: str, options: Mapping[str, Any] | None) -> str:
    """The device runs are told to use: resolved here, or by each Ray worker."""
    if executor != "ray":
        return resolve_device(device)
    if device not in DEVICES:
        raise UserError(f"unknown --device {device!r}; valid: {', '.join(DEVICES)}")
    if device == "cuda" and not (options or {}).get("gpus_per_run"):
        raise UserError("--device cuda with --executor ray needs --gpus-per-run (e.g. 1, or "
                        "0.25 to pack four runs on a GPU): Ray hides GPUs from tasks that "
                        "request none")
    return device


def _check_execution(device: str, compile: str, executor: str, pack: int) -> None:
    """Refuse, in one line each, execution options that cannot work here."""
    if compile not in COMPILE_MODES:
        raise UserError(f"unknown --compile {compile!r}; valid: {', '.join(COMPILE_MODES)}")
    if compile == "graphs" and device != "cuda":
        raise UserError(f"--compile graphs needs a CUDA device, but runs go to {device}; "
                        "run on a GPU machine (--device cuda or auto) or drop --compile")
    if executor == "packed" and (isinstance(pack, bool) or not isinstance(pack, int)
                                 or not 1 <= pack <= MAX_WORKERS):
        raise UserError(f"--pack must be an int from 1 to {MAX_WORKERS}, got {pack!r}")


def describe_recipes() -> str:
    """A table of the registered recipes for ``bnlab list``."""
    lines = []
    for name in list_recipes():
        card = get_recipe(name).card
        runtimes = "; ".join(f"{s}: {t}" for s, t in card.runtime.items())
        lines.append(f"{name}\n  {card.paper}, {card.figure}: {card.summary}\n"
                     f"  runtime: {runtimes or 'not stated'}\n"
                     f"  --data paper: {card.data_paper if card.dataset else 'no dataset'}\n"
                     f"  --data mnist1d: {card.data_mnist1d}")
    return "\n".join(lines)
