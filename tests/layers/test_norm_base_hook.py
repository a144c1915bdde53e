"""NormBase owns the one ``forward``; subclasses implement only the ``_normalize`` hook."""

from __future__ import annotations

import pytest
import torch
from _layers_helpers import NORMS

from bnlab.layers import NormBase, create_norm


class Recorder(NormBase):
    """A norm whose hook records what forward decided and returns its input."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple] = []

    def _normalize(self, x, running_mean, running_var, batch_stats, momentum):
        self.calls.append((running_mean, running_var, batch_stats, momentum))
        return x


@pytest.mark.parametrize("name", NORMS)
def test_no_registered_norm_overrides_forward(name):
    norm = create_norm(name, 3)
    if isinstance(norm, NormBase):
        assert type(norm).forward is NormBase.forward, f"{name} re-implements forward"
        assert type(norm)._normalize is not NormBase._normalize


def test_base_without_hook_says_what_to_implement():
    with pytest.raises(NotImplementedError, match="NormBase must implement _normalize"):
        NormBase(3)(torch.randn(4, 3))


@pytest.mark.parametrize(
    "kwargs,training,expected",
    [
        ({"momentum": 0.25}, True, ("buffers", True, 0.25)),
        ({"momentum": 0.25}, False, ("buffers", False, 0.0)),
        ({"track_running_stats": False}, True, (None, True, 0.0)),
        ({"track_running_stats": False}, False, (None, True, 0.0)),
    ],
    ids=["train", "eval", "untracked_train", "untracked_eval"],
)
def test_hook_receives_buffers_mode_and_factor(kwargs, training, expected):
    norm = Recorder(3, **kwargs).train(training)
    norm(torch.randn(4, 3))
    (running_mean, running_var, batch_stats, momentum) = norm.calls[-1]
    buffers, want_batch_stats, want_momentum = expected
    if buffers is None:
        assert running_mean is None and running_var is None
    else:
        assert running_mean is norm.running_mean and running_var is norm.running_var
    assert batch_stats is want_batch_stats
    assert momentum == want_momentum


def test_momentum_none_passes_the_cumulative_factor_and_counts_batches():
    norm = Recorder(3, momentum=None)
    for _ in range(4):
        norm(torch.randn(4, 3))
    assert [c[3] for c in norm.calls] == [1.0, 1 / 2, 1 / 3, 1 / 4]
    assert norm.num_batches_tracked.item() == 4
    norm.eval()(torch.randn(4, 3))
    assert norm.num_batches_tracked.item() == 4  # eval does not count


def test_forward_checks_the_input_before_the_hook_runs():
    norm = Recorder(3)
    with pytest.raises(ValueError, match="3 channels"):
        norm(torch.randn(4, 5))
    with pytest.raises(ValueError, match="more than one value per channel"):
        norm(torch.randn(1, 3))
    assert norm.calls == [] and norm.num_batches_tracked.item() == 0
