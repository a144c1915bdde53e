"""``python -m bnlab.bench layers|probes|loop|hessian|all [--device cpu|cuda|auto]``."""

from __future__ import annotations

import argparse

from bnlab.bench import BENCHES, run_bench


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bnlab.bench", description=__doc__)
    parser.add_argument("which", choices=[*BENCHES, "all"])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a dry run")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    print(run_bench(args.which, args.device, quick=args.quick, threads=args.threads))


if __name__ == "__main__":
    main()
