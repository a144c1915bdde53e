"""Cost of each probe in units of one training step (forward + backward + SGD step).

Model: bnlab's VGG-16 at width/4 (``create_model("vgg16", width=0.25)``) with BN, CIFAR-
shaped random inputs, batch 128, CPU. The baseline, one plain training step, is timed in the
same process; every probe is reported as median(probe time) / median(step time).

Targets (issue 6): ICS over L layers ≤ L + 1.2 steps; landscape with k step sizes ≤ k + 1.2
steps; activation statistics ≤ 0.3 steps. Activation statistics are timed two ways: the
plain function (one extra forward pass, cut after the last layer) and the scheduled probe
in a training step, which reads the step's own forward pass (``Probe.watch_forward``) and
costs only the statistics: that is the form the target applies to.

Run: ``python benchmarks/bench_probes.py [--repeats 3] [--threads N]`` (default: torch's own
thread count; pass ``--threads`` to pin it).
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from bnlab.models import create_model
from bnlab.probes.activations import ActivationStatsProbe, activation_stats
from bnlab.probes.alignment import output_gradient_alignment
from bnlab.probes.base import ProbeContext
from bnlab.probes.gradients import gradient_stats
from bnlab.probes.ics import internal_covariate_shift
from bnlab.probes.landscape import landscape, relative_loss


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("vgg16", width=0.25, in_shape=(3, 32, 32), num_classes=10).train()
    x, y = torch.randn(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batch = (x, y)

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    base = median_time(step, args.repeats)
    layers = [5, 10]
    cases = {
        f"ics (L={len(layers)})": (
            lambda: internal_covariate_shift(model, F.cross_entropy, batch, opt, layers),
            len(layers) + 1.2,
        ),
        "landscape default (k=4)": (
            lambda: landscape(model, F.cross_entropy, batch, lr=0.01), 4 + 1.2
        ),
        "landscape forced vmap (k=4)": (
            lambda: landscape(model, F.cross_entropy, batch, lr=0.01, batched=True), None
        ),
        "relative_loss (17 etas)": (lambda: relative_loss(model, F.cross_entropy, batch), None),
        "gradient_stats (2 layers)": (
            lambda: gradient_stats(model, F.cross_entropy, batch, layers), None
        ),
        "alignment (site 5 weight)": (
            lambda: output_gradient_alignment(model, F.cross_entropy, batch, param=5), None
        ),
        "activation_stats fn (2 layers)": (lambda: activation_stats(model, batch, layers), None),
    }
    probe = ActivationStatsProbe(layers)

    def probed_step() -> None:
        opt.zero_grad()
        with probe.watch_forward(model) or nullcontext():
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        probe.on_step(ProbeContext(model, F.cross_entropy, batch, opt, 0.01, 0, lambda *a: None))
        opt.step()

    print(f"one training step: {base * 1e3:.1f} ms (threads={torch.get_num_threads()})")
    for name, (fn, target) in cases.items():
        ratio = median_time(fn, args.repeats) / base
        verdict = "" if target is None else f"  target <= {target:.1f}: " + (
            "ok" if ratio <= target else "MISSED"
        )
        print(f"{name:30s} {ratio:6.2f} steps{verdict}")
    extra = median_time(probed_step, args.repeats) / base - 1.0
    verdict = "ok" if extra <= 0.3 else "MISSED"
    print(f"{'activation probe in a step':30s} {extra:6.2f} steps  target <= 0.3: {verdict}")


if __name__ == "__main__":
    main()
