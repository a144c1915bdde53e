"""Forward+backward time of every bnlab norm as a ratio to torch.nn.BatchNorm2d.

A thin wrapper around ``bnlab.bench.layers`` (the same table as ``run_bench("layers", ...)``):

    python benchmarks/bench_layers.py [--device cpu|cuda] [--threads N] [--repeats 9]
        [--shape 128 64 32 32] [--quick]

The header states the device, torch version and CPU thread count.
"""

from bnlab.bench.layers import main

if __name__ == "__main__":
    main()
