"""The ``bnlab`` command (also ``python -m bnlab``): parse, build, call; no logic of its own.

Commands: ``list``, ``run RECIPE``, ``reproduce [RECIPE ...]``, ``report``, ``status``,
``export``, ``inspect module:factory``, ``bench`` and ``demo``. ``run`` and ``reproduce``
share the flags of DESIGN.md.

Exit status: 0 when everything asked for ended (runs finished or diverged); 2 for bad
input (one line naming it and the fix); 1 for the environment (disk, permissions, memory,
a damaged or lost database: one line) and for a sweep that ended with failed or unfinished
runs (listed, one line each); 130 when interrupted (Ctrl-C or SIGTERM). Never a traceback,
except for a bug in bnlab.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from bnlab.errors import UserError
from bnlab.names import COMPILE_MODES, DATA, DEVICES, EXECUTORS, MAX_WORKERS, SCALES

EXIT_USAGE = 2
EXIT_ENVIRONMENT = 1
EXIT_INTERRUPTED = 130
#: A printed error line is shorter than this, whatever the input it names.
LINE_LIMIT = 300
#: The most steps ``bnlab demo`` takes: beyond it a request is a typo, not a demo.
MAX_DEMO_STEPS = 1_000_000
#: Failed or unfinished runs listed one per line before "... and N more".
_LISTED = 10


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (its usage block is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line naming the fix, exit with status 2."""
        line = _one_line(f"{self.prog}: error: {message} (see {self.prog} --help)")
        print(line, file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an int in ``[low, high]``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value if abs(value) < 10**12 else 'it'} is "
                                             f"not from {low} to {high:,}")
        return value

    parse.__name__ = "integer"
    return parse


def _add_shared_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", default="quick", choices=SCALES,
                   help="smoke (seconds), quick (minutes on a CPU), paper (GPU hours)")
    p.add_argument("--data", default="mnist1d", choices=DATA,
                   help="mnist1d (generated, no download) or the paper's dataset")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder with mnist.npz, cifar10.npz (default: $BNLAB_DATA, else cache)")
    p.add_argument("--out", type=Path, default=Path("bnlab_out"), help="output directory")
    p.add_argument("--seeds", default=None,
                   help="a count N (seeds 0..N-1) or a comma list such as 0,3,7")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable)")
    p.add_argument("--config", type=Path, default=None, metavar="FILE.yaml",
                   help="YAML file of config overrides")
    p.add_argument("--executor", default="serial", choices=EXECUTORS,
                   help="run serially, in a local process pool, as Ray tasks, or several "
                   "runs packed into this process (they share one GPU)")
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="where data and models live (auto: CUDA when available)")
    p.add_argument("--workers", type=_int_between(1, MAX_WORKERS), default=2,
                   help=f"processes for --executor process (1 to {MAX_WORKERS})")
    p.add_argument("--pack", type=_int_between(1, MAX_WORKERS), default=4, metavar="N",
                   help=f"runs interleaved at once by --executor packed (1 to {MAX_WORKERS})")
    p.add_argument("--compile", default="none", choices=COMPILE_MODES,
                   help="graphs: replay each training step as one CUDA graph (needs CUDA)")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--checkpoint-root", type=Path, default=None, metavar="DIR",
                   help="where runs keep checkpoints (default: <out>/checkpoints); with Ray "
                        "on a cluster, a path every node reaches")
    ray = p.add_argument_group("--executor ray (pip install 'bnlab[ray]')")
    ray.add_argument("--address", default=None,
                     help="auto (this machine's cluster) or HOST:PORT; default: a local Ray")
    ray.add_argument("--gpus-per-run", type=float, default=None, metavar="F",
                     help="GPUs each run requests (0.25 packs four runs on a GPU)")
    ray.add_argument("--cpus-per-run", type=float, default=None, metavar="N",
                     help="CPUs each run requests (default 1)")
    ddp = p.add_argument_group("one run across processes: torchrun --nproc-per-node N -m "
                               "bnlab run RECIPE --ddp")
    ddp.add_argument("--ddp", action="store_true",
                     help="train each run with DistributedDataParallel over torchrun's ranks")
    ddp.add_argument("--bn-sync", default=None, choices=("global", "local"),
                     help="BN statistics under --ddp: over the global batch (default) or per "
                          "rank (ghost-style); stored in the run's config")


def _run_options(args: argparse.Namespace) -> dict:
    return {
        "scale": args.scale, "data": args.data, "data_dir": args.data_dir, "out": args.out,
        "seeds": args.seeds, "sets": args.sets, "config_file": args.config,
        "executor": args.executor, "workers": args.workers,
        "retry_failed": args.retry_failed, "progress": not args.no_progress,
        "device": args.device, "compile": args.compile, "pack": args.pack,
        "checkpoint_root": args.checkpoint_root,
        "executor_options": _ray_options(args), "ddp": args.ddp, "bn_sync": args.bn_sync,
    }


def _ray_options(args: argparse.Namespace) -> dict | None:
    """The Ray flags given (``None`` when none was): refused for other executors."""
    given = {k: v for k, v in (("address", args.address), ("gpus_per_run", args.gpus_per_run),
                               ("cpus_per_run", args.cpus_per_run)) if v is not None}
    if given and args.executor != "ray":
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise UserError(f"{flags} apply to --executor ray only; add --executor ray or drop them")
    return given or None


def _cmd_list(args: argparse.Namespace) -> int:
    from bnlab.experiments import describe_recipes

    print(describe_recipes())
    return 0


def _sweep_status(args: argparse.Namespace, summaries: Sequence[Any]) -> int:
    """Print the runs that failed, did not end or restarted; 1 if any failed or did not end."""
    bad = [(key, f"failed: {why}") for s in summaries for key, why in s.failures]
    bad += [(key, f"not finished: {why}") for s in summaries for key, why in s.not_done]
    for s in summaries:
        for key, note in s.notes:
            print(_one_line(f"bnlab {args.command}: run {key[:12]} {note}"), file=sys.stderr)
    if not bad:
        return 0
    print(f"bnlab {args.command}: {len(bad)} run(s) did not finish; fix the cause and run "
          f"the same command again (details: bnlab status --out {args.out})", file=sys.stderr)
    for key, why in bad[:_LISTED]:
        print(_one_line(f"  run {key[:12]} {why}"), file=sys.stderr)
    if len(bad) > _LISTED:
        print(f"  ... and {len(bad) - _LISTED} more", file=sys.stderr)
    return EXIT_ENVIRONMENT


def _cmd_run(args: argparse.Namespace) -> int:
    from bnlab.experiments import run_recipes

    return _sweep_status(args, run_recipes([args.recipe], **_run_options(args)))


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from bnlab.experiments import run_recipes
    from bnlab.report import write_report

    summaries = run_recipes(args.recipes or None, **_run_options(args))
    print(f"report: {write_report(args.out)}")
    return _sweep_status(args, summaries)


def _cmd_report(args: argparse.Namespace) -> int:
    from bnlab.report import write_report
    from bnlab.report.summary import verdict_table
    from bnlab.results import DB_NAME, Store

    if not (args.out / DB_NAME).is_file():
        raise UserError(f"no results in {args.out} (no {DB_NAME}); run `bnlab run RECIPE "
                        f"--out {args.out}` first or pass the right --out")
    also = args.also or []
    for extra in also:
        if not (extra / DB_NAME).is_file():
            raise UserError(f"--also {extra}: no {DB_NAME} there; pass a folder that holds "
                            "a bnlab store")
    if also and not args.summary:
        raise UserError("--also applies to --summary (one verdict table from several "
                        "stores); add --summary or drop --also")
    if args.summary:
        stores = [Store(args.out), *(Store(extra) for extra in also)]
        try:
            print(verdict_table(*stores), end="")
        finally:
            for store in stores:
                store.close()
        return 0
    print(f"report: {write_report(args.out)}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from bnlab.results import status_text

    print(status_text(args.out))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from bnlab.results import export

    export(args.out, format=args.format, dest=args.dest)
    print(f"wrote {args.dest}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from bnlab.bench import run_bench
    from bnlab.experiments import resolve_device

    print(run_bench(args.which, resolve_device(args.device), quick=args.quick,
                    threads=args.threads))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from bnlab.experiments.demo import run_demo

    print(f"Training a 6-layer sigmoid MLP for {args.steps} SGD steps, with and without BN ...")
    for r in run_demo(steps=args.steps):
        print(f"  norm={r.norm:<5} final train loss {r.loss:.3f}  train accuracy {r.accuracy:.3f}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from bnlab.inspect.userland import inspect_command
    from bnlab.report import write_report

    result = inspect_command(
        args.factory, data=args.data, steps=args.steps, out=args.out, compare=args.compare,
        probes=args.probes, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        momentum=args.momentum, loss=args.loss, bn_mode=args.bn_mode, seed=args.seed,
        device=args.device, data_dir=args.data_dir, test_size=args.test_size,
        eval_every=args.eval_every, progress=not args.no_progress)
    print(result.summary())
    print(f"report: {write_report(args.out)}")
    return 0


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="run the instrument panel on your own model and data")
    p.add_argument("factory", help="module:factory (or path/to/file.py:factory) that builds "
                   "your nn.Module with no arguments; imported, never unpickled")
    p.add_argument("--data", required=True,
                   help="cifar10, mnist, mnist1d, or a .npz with x_train, y_train (x_test, y_test)")
    p.add_argument("--steps", type=int, default=0, help="training steps (0: measure only)")
    p.add_argument("--out", type=Path, default=Path("bnlab_inspect"), help="output directory")
    p.add_argument("--compare", default=None, metavar="NORM|module:factory",
                   help="also run the network with every BatchNorm swapped for NORM (e.g. none), "
                   "or a second model, side by side")
    p.add_argument("--probes", default="default",
                   help="default (cheap), all, or a comma list of: activations, gradients, ics, "
                   "landscape, explosion, depth, hessian, relative_loss")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"))
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--loss", default="cross_entropy", choices=("cross_entropy", "mse"))
    p.add_argument("--bn-mode", default="train", choices=("train", "eval"),
                   help="BN mode of the probes' passes: batch (train) or running (eval) statistics")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder with mnist.npz, cifar10.npz (default: $BNLAB_DATA, else cache)")
    p.add_argument("--test-size", type=int, default=2000,
                   help="held-out examples for test_loss/test_acc (0: none)")
    p.add_argument("--eval-every", type=int, default=0, help="evaluation period (0: at the end)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_inspect)


def _one_line(text: str, limit: int = LINE_LIMIT) -> str:
    """``text`` on one line, cut to fewer than ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) < limit else flat[: limit - 4] + "..."


def _error(command: str, err: BaseException, prefix: str = "") -> str:
    message = str(err).strip() or type(err).__name__
    return _one_line(f"bnlab {command}: error: {prefix}{message}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bnlab`` command."""
    from bnlab.bench import BENCHES  # light: the tables import their stacks when run

    parser = _Parser(prog="bnlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="registered recipes").set_defaults(func=_cmd_list)

    run = sub.add_parser("run", help="run one recipe's grid into the results store")
    run.add_argument("recipe", help="a recipe name, or a paper prefix such as bjorck2018")
    _add_shared_flags(run)
    run.set_defaults(func=_cmd_run)

    rep = sub.add_parser("reproduce", help="run recipes (all by default), then write the report")
    rep.add_argument("recipes", nargs="*",
                     help="recipe names or paper prefixes (e.g. bjorck2018); none: every recipe")
    _add_shared_flags(rep)
    rep.set_defaults(func=_cmd_reproduce)

    report = sub.add_parser("report", help="write <out>/report.html from the stored results")
    report.add_argument("--out", type=Path, default=Path("bnlab_out"))
    report.add_argument("--summary", action="store_true",
                        help="print the verdict table as Markdown instead (for the README)")
    report.add_argument("--also", type=Path, action="append", metavar="DIR",
                        help="with --summary: more stores to judge claims on (repeatable); "
                        "a claim's row comes from the first store that measured it")
    report.set_defaults(func=_cmd_report)

    status = sub.add_parser("status", help="runs by status, failures with their first error line")
    status.add_argument("--out", type=Path, default=Path("bnlab_out"))
    status.set_defaults(func=_cmd_status)

    export = sub.add_parser("export", help="write the stored results as CSV, Parquet or "
                            "TensorBoard event files")
    export.add_argument("--out", type=Path, default=Path("bnlab_out"))
    export.add_argument("--format", choices=("csv", "parquet", "tensorboard"), required=True)
    export.add_argument("--dest", type=Path, required=True)
    export.set_defaults(func=_cmd_export)

    _add_inspect(sub)

    bench = sub.add_parser("bench", help="benchmark tables: ratios against baselines timed in "
                           "the same process")
    bench.add_argument("which", choices=(*BENCHES, "all"))
    bench.add_argument("--device", default="auto", choices=DEVICES)
    bench.add_argument("--quick", action="store_true",
                       help="tiny sizes: checks the machinery runs; ratios are not measurements")
    bench.add_argument("--threads", type=_int_between(1, 256), default=None,
                       help="torch CPU threads")
    bench.set_defaults(func=_cmd_bench)

    demo = sub.add_parser("demo", help="a one-minute BN vs no-norm comparison on generated data")
    demo.add_argument("--steps", type=_int_between(1, MAX_DEMO_STEPS), default=400,
                      help=f"SGD steps per network (1 to {MAX_DEMO_STEPS:,})")
    demo.set_defaults(func=_cmd_demo)
    return parser


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bnlab`` and ``python -m bnlab``.

    A :class:`~bnlab.errors.UserError` (unknown recipe, bad ``--set`` key or value, missing
    data, a locked or unusable output folder) prints one line naming the problem and the
    fix and returns exit status 2, as does a number too large to use. An environment
    failure (``OSError``, including ``bnlab.results.StoreError``; an SQLite error: disk full,
    permissions, a damaged database; ``MemoryError``) prints one line and returns 1.
    SIGTERM is handled like Ctrl-C. Anything else is a bug and shows its traceback.
    """
    args = build_parser().parse_args(argv)
    previous = signal.getsignal(signal.SIGTERM)
    if _main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.func(args))
    except UserError as err:
        print(_error(args.command, err), file=sys.stderr)
        return EXIT_USAGE
    except OverflowError as err:
        print(_error(args.command, err, "a number is too large: "), file=sys.stderr)
        return EXIT_USAGE
    except (OSError, sqlite3.Error) as err:  # bnlab.results.StoreError is an OSError
        print(_error(args.command, err), file=sys.stderr)
        return EXIT_ENVIRONMENT
    except MemoryError as err:
        print(_error(args.command, err, "out of memory; ask for less (fewer seeds, a "
                                         "smaller --scale) or free memory: "), file=sys.stderr)
        return EXIT_ENVIRONMENT
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are stored; run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if _main_thread():
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
