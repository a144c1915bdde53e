"""A per-run progress bar (loss, evaluation metrics, steps/s, ETA); silent off a terminal."""

from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    """Wraps ``tqdm``; updated only at log intervals, so it costs nothing per step."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str | None) -> None:
        active = enabled and sys.stderr.isatty()
        self.bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit="step",
            disable=not active,
            dynamic_ncols=True,
            leave=False,
        )
        self.postfix: dict[str, str] = {}

    def advance(self, to_step: int, metrics: dict[str, float]) -> None:
        """Move the bar to ``to_step`` and show ``metrics`` (loss, accuracy, …)."""
        self.postfix.update({k: f"{v:.4g}" for k, v in metrics.items()})
        self.bar.set_postfix(self.postfix, refresh=False)
        self.bar.update(to_step - self.bar.n)

    def close(self) -> None:
        """Remove the bar."""
        self.bar.close()
