"""Time per step of bnlab.train.train as a ratio to a bare PyTorch loop (target <= 1.05).

A thin wrapper around ``bnlab.bench.loop`` (``run_bench("loop", ...)``); one thread unless
``--threads`` says otherwise:

    python benchmarks/bench_loop.py [--steps 300] [--repeats 7] [--device cpu|cuda]
"""

from bnlab.bench.loop import main

if __name__ == "__main__":
    main()
