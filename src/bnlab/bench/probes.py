"""Cost of each probe in units of one training step (forward + backward + SGD step).

Model: bnlab's VGG-16 with BN (width 1/4 on the CPU, full width on a GPU; issue 15's
table is full width), CIFAR-shaped random inputs, batch 128. The baseline step is timed
in the same process, interleaved with the probes (round-robin), and every probe is
reported as median(probe time) / median(step time).

Targets (issues 6, 15): ICS over L layers <= L + 1.2 steps (GPU: 3.2 for L = 2);
landscape with k step sizes <= k + 1.2 steps (GPU: 5.5 for k = 4); activation statistics
read from the step's own forward <= 0.3 steps. The Hessian rows (top eigenvalue, tol
1e-3, eval and train mode) show what a curvature measurement costs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from bnlab.bench._timing import header, resolve_device, round_robin
from bnlab.models import create_model
from bnlab.probes.activations import ActivationStatsProbe, activation_stats
from bnlab.probes.alignment import output_gradient_alignment
from bnlab.probes.base import ProbeContext
from bnlab.probes.gradients import gradient_stats
from bnlab.probes.hessian import hessian_eigs
from bnlab.probes.ics import internal_covariate_shift
from bnlab.probes.landscape import landscape, relative_loss

Case = tuple[Callable[[], object], float | None]  # (the call, its target in steps or None)


def _cases(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
           opt: torch.optim.Optimizer, hessian: bool) -> dict[str, Case]:  # fmt: skip
    layers = [5, 10]
    cases: dict[str, Case] = {
        f"ics (L={len(layers)})": (
            lambda: internal_covariate_shift(model, F.cross_entropy, batch, opt, layers),
            len(layers) + 1.2,
        ),
        "landscape default (k=4)": (
            lambda: landscape(model, F.cross_entropy, batch, lr=0.01), 4 + 1.2
        ),
        "landscape vmap (k=4)": (
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
    if hessian:
        for mode in ("eval", "train"):
            cases[f"hessian top-1 tol 1e-3 ({mode})"] = (
                lambda mode=mode: hessian_eigs(
                    model, F.cross_entropy, batch, tol=1e-3, bn_mode=mode
                ),
                None,
            )
    return cases


def table(device: str | torch.device = "cpu", *, quick: bool = False,
          repeats: int | None = None, hessian: bool = True) -> str:  # fmt: skip
    """The probe-cost table, as printable text.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        quick: a tiny VGG (width 1/16, batch 16) and 2 repeats: a dry run, not a measurement.
        repeats: round-robin repeats (default 3 on CPU, 10 on GPU).
        hessian: include the Hessian top-eigenvalue rows.

    Returns:
        The table, with the device, torch version and thread count in its header.
    """
    dev = resolve_device(device)
    repeats = repeats or (2 if quick else 10 if dev.type == "cuda" else 3)
    width = 1 / 16 if quick else 1.0 if dev.type == "cuda" else 0.25
    n = 16 if quick else 128
    torch.manual_seed(0)
    model = create_model("vgg16", width=width, in_shape=(3, 32, 32), num_classes=10)
    model = model.to(dev).train()
    x = torch.randn(n, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (n,), device=dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batch = (x, y)
    probe = ActivationStatsProbe([5, 10])

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def probed_step() -> None:
        opt.zero_grad()
        with probe.watch_forward(model) or nullcontext():
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        probe.on_step(ProbeContext(model, F.cross_entropy, batch, opt, 0.01, 0, lambda *a: None))
        opt.step()

    cases = _cases(model, batch, opt, hessian)
    jobs = {"step": step, "step + activation probe": probed_step}
    jobs.update({name: fn for name, (fn, _) in cases.items()})
    med = round_robin(jobs, repeats, dev)
    base = med["step"]
    title = f"bnlab probes: cost in training steps (VGG-16 width {width:g}, batch {n})"
    lines = [header(title, dev, repeats), f"  one training step: {base * 1e3:.1f} ms"]
    for name, (_, target) in cases.items():
        ratio = med[name] / base
        verdict = "" if target is None else f"  target <= {target:.1f}: " + (
            "ok" if ratio <= target else "MISSED")  # fmt: skip
        lines.append(f"  {name:32s} {ratio:6.2f} steps{verdict}")
    extra = med["step + activation probe"] / base - 1.0
    lines.append(f"  {'activation probe in a step':32s} {extra:6.2f} steps  target <= 0.3: "
                 + ("ok" if extra <= 0.3 else "MISSED"))  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """The command line of this table (``benchmarks/bench_*.py`` call it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-hessian", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(table(args.device, quick=args.quick, repeats=args.repeats, hessian=not args.no_hessian))
