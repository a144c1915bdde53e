"""Layers run on public torch ops only, and every memory layout gives the same numbers.

``aten.native_batch_norm_backward`` called with an undefined saved mean worked on the CPU
and crashed on CUDA (issue 15): ATen internals may have contracts that differ by device.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest
import torch
from _layers_helpers import NOISY, NORMS

import bnlab.layers
from bnlab.layers import create_norm

LAYERS_DIR = Path(bnlab.layers.__file__).parent
# torch.ops.aten.*, torch.native_batch_norm, torch._C, torch._VF: internals, not API
INTERNAL = re.compile(r"torch\s*\.\s*(ops|_C|_VF)\b|\bnative_\w+|\baten\b")


def _code_tokens(path: Path) -> str:
    """The file's code with comments and strings (docstrings) removed."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    kept = [t.string for t in tokens if t.type not in (tokenize.COMMENT, tokenize.STRING)]
    return " ".join(kept)


@pytest.mark.parametrize("path", sorted(LAYERS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_layers_call_no_aten_internals(path):
    hits = INTERNAL.findall(_code_tokens(path))
    assert not hits, f"{path.name} uses torch internals {hits}; use public ops"


def test_the_internal_pattern_catches_what_it_should():
    code = "torch.ops.aten.native_batch_norm_backward(g) ; torch.native_batch_norm(x)"
    assert len(INTERNAL.findall(code)) >= 3
    assert not INTERNAL.findall("F.batch_norm(x) ; torch.var_mean(x) ; native = 1")


def _layouts(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same values (N, C, H, W) in three memory layouts."""
    odd = x.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)  # dense, but (N, W, C, H)
    return {
        "contiguous": x.contiguous(),
        "channels_last": x.contiguous(memory_format=torch.channels_last),
        "permuted": odd,
    }


@pytest.mark.parametrize("name", NORMS)
def test_every_layout_gives_the_same_output_and_gradient(name):
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 5) * 2 + 1
    g = torch.randn(6, 3, 4, 5)
    kwargs = {"virtual_batch_size": 4} if name == "ghost_bn" else {}
    norm = create_norm(name, 3, momentum=0.0, **kwargs)  # same running stats every pass
    state = norm.noise_state() if name in NOISY else None
    results = {}
    for layout, inp in _layouts(x).items():
        if state is not None:
            norm.set_noise_state(state)
        leaf = inp.detach().requires_grad_()
        y = norm(leaf)
        y.backward(g)
        results[layout] = (y.detach().contiguous(), leaf.grad.contiguous())
    want_y, want_g = results["contiguous"]
    for layout, (y, grad) in results.items():
        torch.testing.assert_close(y, want_y, rtol=1e-5, atol=1e-6, msg=layout)
        torch.testing.assert_close(grad, want_g, rtol=1e-5, atol=1e-6, msg=layout)
