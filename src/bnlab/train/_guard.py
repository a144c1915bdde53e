"""On-device training-loss accumulator and divergence detector.

Each step appends the detached loss tensor (no host sync); :meth:`LossGuard.read` stacks the
interval's losses and moves two numbers to the host once per log interval: the interval
mean and the first bad step. A step is bad when its loss is non-finite or exceeds
``factor`` × the run's initial (step-0) loss (DESIGN.md, Contracts: Runs).
"""

from __future__ import annotations

from typing import Any

import torch


class LossGuard:
    """Collect per-step losses on device; report interval means and the first bad step."""

    def __init__(self, factor: float | None) -> None:
        self.factor = factor
        self.initial: torch.Tensor | None = None
        self.losses: list[torch.Tensor] = []
        self.start = 0  # step of self.losses[0]

    def push(self, loss: torch.Tensor) -> None:
        """Record the loss of the next step (no host sync)."""
        loss = loss.detach()
        if self.initial is None:
            self.initial = loss
        self.losses.append(loss)

    def __len__(self) -> int:
        return len(self.losses)

    def _first_bad(self, values: torch.Tensor) -> torch.Tensor:
        """Index of the first bad value in ``values`` (k,), or -1, as a 0-d tensor."""
        bad = ~torch.isfinite(values)
        if self.factor is not None and self.initial is not None:
            init = self.initial.double()
            bad |= (init > 0) & (values > self.factor * init)
        return torch.where(bad.any(), bad.to(torch.int64).argmax(), -1)

    def peek(self) -> int | None:
        """The first bad step of the current interval, without ending it (one host sync)."""
        if not self.losses:
            return None
        idx = int(self._first_bad(torch.stack(self.losses).double()))
        return None if idx < 0 else self.start + idx

    def read(self) -> tuple[float, int | None]:
        """Return (mean loss of the interval, first bad step or ``None``); start a new one."""
        if not self.losses:
            return float("nan"), None
        values = torch.stack(self.losses).double()  # (k,)
        first = self._first_bad(values)
        mean, idx = torch.stack([values.mean(), first.double()]).tolist()  # the one host sync
        start = self.start
        self.start += len(self.losses)
        self.losses = []
        return mean, (None if idx < 0 else start + int(idx))

    def state_dict(self) -> dict[str, Any]:
        """Tensors and ints only, for a ``weights_only`` checkpoint."""
        pending = torch.stack(self.losses) if self.losses else torch.empty(0)
        return {"initial": self.initial, "pending": pending, "start": self.start}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        """Restore what :meth:`state_dict` returned, moving its tensors to ``device``."""
        initial = state["initial"]
        self.initial = None if initial is None else initial.to(device)
        self.losses = list(state["pending"].to(device).unbind(0))
        self.start = int(state["start"])
