"""The ``bnlab`` command: parse arguments, build, call. No logic of its own."""

from __future__ import annotations

import argparse
import sys


def _cmd_demo(args: argparse.Namespace) -> int:
    from bnlab.experiments.demo import run_demo

    print(f"Training a 6-layer sigmoid MLP for {args.steps} SGD steps, with and without BN ...")
    for r in run_demo(steps=args.steps):
        print(f"  norm={r.norm:<5} final train loss {r.loss:.3f}  train accuracy {r.accuracy:.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bnlab`` command."""
    parser = argparse.ArgumentParser(prog="bnlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="a one-minute BN vs no-norm comparison on generated data")
    demo.add_argument("--steps", type=int, default=400)
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bnlab`` and ``python -m bnlab``."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
