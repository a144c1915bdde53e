"""Attach bnlab probes to a plain PyTorch training loop.

A small MLP with BatchNorm is trained with momentum SGD on synthetic data. Three probes ride
along; each is called after ``loss.backward()`` and before ``optimizer.step()``, exactly
where bnlab's own loop calls them, and none changes the training run:

- ``ICSProbe``: Santurkar's internal covariate shift of norm sites 1 and 2 (Def. 2.1),
  using a copy of the momentum optimizer's state; cost 3 forward+backward passes.
- ``LandscapeProbe``: loss and gradient change along −g at η ∈ {0.5, 1, 2, 4} × lr and the
  effective β-smoothness (Santurkar Fig. 4); cost 5 forward+backward passes.
- ``GradientStatsProbe``: the first layer's gradient norm, std and kurtosis (Bjorck
  Fig. 2); cost 1 forward+backward.

Run it with ``python examples/probes_in_a_plain_loop.py`` (a few seconds on a CPU). It prints
one line per probed step and checks at the end that the probed run equals an unprobed one
bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bnlab.probes.base import ProbeContext
from bnlab.probes.gradients import GradientStatsProbe
from bnlab.probes.ics import ICSProbe
from bnlab.probes.landscape import LandscapeProbe

STEPS = 30  # optimizer updates
LR = 0.1  # SGD learning rate
BATCH = 64  # samples per step


def make_model() -> nn.Module:
    """Linear → BN → ReLU → Linear → BN → ReLU → Linear (two norm sites)."""
    return nn.Sequential(
        nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(),
        nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU(),
        nn.Linear(32, 4),
    )


def make_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A 4-class problem: the label is the argmax of a fixed random projection."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(STEPS * BATCH, 20, generator=g)
    y = (x @ torch.randn(20, 4, generator=g)).argmax(dim=1)
    return x, y


def train(probes: list, log: dict[int, dict[str, object]]) -> nn.Module:
    """A plain training loop; ``probes`` observe it, ``log`` collects what they log."""
    torch.manual_seed(0)
    model = make_model().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    x, y = make_data()
    for step in range(STEPS):
        batch = (x[step * BATCH : (step + 1) * BATCH], y[step * BATCH : (step + 1) * BATCH])
        optimizer.zero_grad()
        loss = F.cross_entropy(model(batch[0]), batch[1])
        loss.backward()
        row = log.setdefault(step, {"loss": float(loss.detach())})
        ctx = ProbeContext(model, F.cross_entropy, batch, optimizer, LR, step, row.__setitem__)
        for probe in probes:
            if probe.due(step):
                probe.on_step(ctx)  # after backward, before the update
        optimizer.step()
    return model


def main() -> dict[int, dict[str, object]]:
    """Train with and without probes; print the probes' numbers; check they changed nothing."""
    probes = [
        ICSProbe(layers=[1, 2], schedule=10),
        LandscapeProbe(schedule=10),
        GradientStatsProbe(layers=[1], schedule=10),
    ]
    log: dict[int, dict[str, object]] = {}
    probed = train(probes, log)
    for step, row in log.items():
        if "landscape/beta" in row:
            print(
                f"step {step:3d}  loss {row['loss']:.3f}  "
                f"ICS(site 2) {row['ics/2/l2']:.4f} cos {row['ics/2/cos']:.3f}  "
                f"beta {row['landscape/beta']:.2f}  grad std {row['grad/1/std']:.2e}"
            )
    plain = train([], {})
    same = all(torch.equal(a, b) for a, b in zip(probed.state_dict().values(),
                                                  plain.state_dict().values(), strict=True))
    print("probed run identical to unprobed run:", same)
    if not same:
        raise RuntimeError("a probe changed the training run")
    return log


if __name__ == "__main__":
    main()
