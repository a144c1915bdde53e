"""Second derivatives through every norm (Hessian probes differentiate the gradient again).

The fast backward passes of lp and ghost BN cannot be differentiated; under
``create_graph=True`` they re-run the forward with plain ops. gradgradcheck compares
every second derivative with finite differences of the first, in float64.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnlab.layers import create_norm
from bnlab.probes.hessian import hessian_eigs

CASES = {
    "bn": {}, "bn_reference": {}, "l1": {}, "l2": {}, "linf": {},
    "l1_I2": {"centered": True}, "l2_I2": {"centered": True}, "linf_I2": {"centered": True},
    "ghost_bn": {"virtual_batch_size": 3}, "ln": {}, "gn": {},
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_gradgradcheck_float64(case):
    torch.manual_seed(0)
    name = case.split("_I2")[0]
    norm = create_norm(name, 3, dtype=torch.float64, **CASES[case])
    with torch.no_grad():
        for p in norm.parameters():
            p.uniform_(0.5, 1.5)
    x = (torch.randn(7, 3, 2, dtype=torch.float64) + 0.3).requires_grad_()  # ghost: 3, 3, 1
    names = [n for n, _ in norm.named_parameters()]

    def f(x_, *ps):
        swap = dict(zip(names, ps, strict=True))
        with torch.nn.utils.stateless._reparametrize_module(norm, swap):
            return norm(x_)

    params = tuple(p.detach().clone().requires_grad_() for p in norm.parameters())
    assert torch.autograd.gradgradcheck(f, (x, *params), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name,kw", [("l2", {}), ("linf", {"centered": True}),
                                     ("ghost_bn", {"virtual_batch_size": 4})])  # fmt: skip
def test_hessian_eigenvalue_through_the_norm_matches_a_dense_twin(name, kw):
    """The top Hessian eigenvalue of a net with this norm against torch.func.hessian of the
    same net written with plain ops (no bnlab code in the twin)."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 4), create_norm(name, 4, **kw), nn.Tanh(),
                          nn.Linear(4, 3)).double()  # fmt: skip
    x = torch.randn(8, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    shapes = [p.shape for p in model.parameters()]

    def normalize(h):  # the norm's definition, (8, 4) over the batch
        if name == "ghost_bn":
            return torch.cat([(c - c.mean(0)) / torch.sqrt(c.var(0, unbiased=False) + 1e-5)
                              for c in h.split(4)])  # fmt: skip
        mu = h.mean(0)
        z = h - mu if kw.get("centered") else h
        s = z.abs().amax(0) if name == "linf" else z.pow(2).mean(0).sqrt()
        return (h - mu) / torch.sqrt(s * s + 1e-5)

    def loss(flat):
        w0, b0, g, b, w3, b3 = (t.view(s) for t, s in
                                zip(torch.split(flat, [s.numel() for s in shapes]), shapes,
                                    strict=True))  # fmt: skip
        h = normalize(x @ w0.T + b0) * g + b
        return F.cross_entropy(torch.tanh(h) @ w3.T + b3, y)

    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    want = torch.linalg.eigvalsh(torch.func.hessian(loss)(flat)).max().item()
    got = hessian_eigs(model, F.cross_entropy, (x, y), tol=1e-10, max_iter=200).values[0]
    assert got == pytest.approx(want, rel=1e-7)
