"""Init options give the stated weight statistics; biases start at zero; norms untouched."""

import math

import pytest
import torch
from _models_helpers import weighted_layers

from bnlab.models import create_model, norm_sites


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    # Written out here rather than taken from torch: (out, in, *kernel).
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _expected_std(scheme: str, weight: torch.Tensor, init_std: float) -> float:
    fan_in, fan_out = _fans(weight)
    return {
        "normal": init_std,
        "glorot": math.sqrt(2.0 / (fan_in + fan_out)),
        "kaiming": math.sqrt(2.0 / fan_in),
    }[scheme]


def _standardized(model, scheme, init_std=0.0):
    """All weights divided by their stated std, pooled: should have mean 0 and std 1."""
    parts = [
        m.weight.detach().double().flatten() / _expected_std(scheme, m.weight, init_std)
        for m in weighted_layers(model)
    ]
    return torch.cat(parts)


# Fraction of |z| < 1 for z = w / std: Gaussian 0.6827; uniform on ±√3 gives 1/√3 = 0.5774.
WITHIN_ONE_STD = {"normal": 0.6827, "kaiming": 0.6827, "glorot": 1 / math.sqrt(3)}


def _check(z: torch.Tensor, scheme: str) -> None:
    n = z.numel()
    assert abs(z.mean().item()) < 5 / math.sqrt(n)
    assert abs(z.std().item() - 1) < 6 / math.sqrt(2 * n) + 0.005
    assert abs((z.abs() < 1).double().mean().item() - WITHIN_ONE_STD[scheme]) < 0.01
    if scheme == "glorot":  # U(−a, a) with a = √3 · std
        assert z.abs().max().item() <= math.sqrt(3) + 1e-6


@pytest.mark.parametrize("scheme", ["normal", "glorot", "kaiming"])
def test_mlp_init_statistics(scheme):
    torch.manual_seed(0)
    model = create_model(
        "mlp", norm="none", in_shape=(800,), num_classes=300, widths=(400,),
        init=scheme, init_std=0.05,
    )
    _check(_standardized(model, scheme, init_std=0.05), scheme)
    assert all(torch.count_nonzero(m.bias) == 0 for m in weighted_layers(model))


@pytest.mark.parametrize(
    ("name", "scheme", "options"),
    [
        pytest.param("resnet20", "kaiming", {}, id="resnet_default_kaiming"),
        pytest.param("resnet20", "glorot", {"init": "glorot"}, id="resnet_glorot"),
        pytest.param("vgg11", "glorot", {"width": 0.25}, id="vgg_default_glorot"),
        pytest.param("vgg11", "kaiming", {"width": 0.25, "init": "kaiming"}, id="vgg_kaiming"),
    ],
)
def test_conv_model_init_statistics(name, scheme, options):
    torch.manual_seed(0)
    model = create_model(name, norm="bn", in_shape=(3, 16, 16), num_classes=10, **options)
    _check(_standardized(model, scheme), scheme)
    for site in norm_sites(model):  # norms keep gamma = 1, beta = 0
        assert torch.equal(site.norm.weight, torch.ones_like(site.norm.weight))
        assert torch.equal(site.norm.bias, torch.zeros_like(site.norm.bias))


def test_dln_default_is_glorot():
    torch.manual_seed(0)
    model = create_model("dln", norm="none", in_shape=(10,), num_classes=10)
    z = _standardized(model, "glorot")
    assert z.numel() == 25 * 100
    assert abs(z.std().item() - 1) < 0.06
    assert z.abs().max().item() <= math.sqrt(3) + 1e-6


def test_mlp_default_is_small_gaussian():
    torch.manual_seed(0)
    model = create_model("mlp", norm="none", in_shape=(1, 28, 28), num_classes=10)
    first = weighted_layers(model)[0].weight.detach().double()
    assert abs(first.std().item() - 0.1) < 0.002  # 78,400 samples: std error ≈ 0.00025
