"""Cost of each probe in units of one training step, baseline interleaved (round-robin).

A thin wrapper around ``bnlab.bench.probes`` (``run_bench("probes", ...)``):

    python benchmarks/bench_probes.py [--device cpu|cuda] [--threads N] [--repeats 3]
        [--no-hessian] [--quick]
"""

from bnlab.bench.probes import main

if __name__ == "__main__":
    main()
