"""Top Hessian eigenvalue: bnlab (thick-restart Lanczos) against PyHessian (power iteration).

A thin wrapper around ``bnlab.bench.hessian`` (``run_bench("hessian", ...)``), which says
how the comparison is made (equal accuracy 1e-3 against a float64 reference):

    BNLAB_DATA=../shared/data python benchmarks/bench_hessian.py [--device cpu|cuda]
        [--threads N] [--repeats 3] [--batch-file F] [--models vgg16 resnet20]
"""

from bnlab.bench.hessian import main

if __name__ == "__main__":
    main()
