"""Every model with every registered norm runs forward and backward on images and signals."""

import pytest
import torch
from _models_helpers import BASE_NORMS, DEEP, INPUTS, NUM_CLASSES, build, model_norm_cases

from bnlab.layers import list_norms
from bnlab.models import list_models


@pytest.mark.parametrize("kind", sorted(INPUTS))
@pytest.mark.parametrize(("name", "norm"), model_norm_cases(list_models(), list_norms()))
def test_forward_backward(name, norm, kind):
    model = build(name, norm, kind)
    x = torch.rand(4, *INPUTS[kind])
    out = model(x)  # (4, *in_shape) -> (4, K)
    assert out.shape == (4, NUM_CLASSES)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()


@pytest.mark.parametrize("kind", sorted(INPUTS))
@pytest.mark.parametrize("norm", BASE_NORMS)
@pytest.mark.parametrize("name", sorted(set(list_models()) - set(DEEP)))
def test_gradient_reaches_every_weight(name, norm, kind):
    # Only for bn and none: a norm over one value per group (e.g. GroupNorm on a 1×1 map)
    # outputs a constant and legitimately cuts the gradient.
    model = build(name, norm, kind)
    model(torch.rand(4, *INPUTS[kind])).square().mean().backward()
    for pname, p in model.named_parameters():
        if pname.endswith("weight") and p.dim() > 1:
            assert p.grad.abs().sum() > 0, f"{pname} is not reached by the gradient"
