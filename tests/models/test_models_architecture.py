"""Architectures against independent references: float64 forwards, hand-built shortcuts."""

import math

import pytest
import torch
from _models_helpers import weighted_layers
from torch import nn

from bnlab.models import create_model, norm_sites
from bnlab.models.resnet_cifar import ShortcutA

REFERENCE_ACTS = {
    "sigmoid": torch.sigmoid,
    "relu": lambda z: z.clamp_min(0),
    "tanh": torch.tanh,
    "linear": lambda z: z,
}


def _batch_norm_train(z: torch.Tensor, eps: float) -> torch.Tensor:
    """Ioffe Alg. 1 with γ = 1, β = 0: batch mean and biased variance over dim 0."""
    mean = z.mean(0, keepdim=True)
    var = ((z - mean) ** 2).mean(0, keepdim=True)
    return (z - mean) / torch.sqrt(var + eps)


@pytest.mark.parametrize("skip", [False, True], ids=["plain", "skip"])
@pytest.mark.parametrize("activation", sorted(REFERENCE_ACTS))
@pytest.mark.parametrize("norm", ["none", "bn"])
def test_mlp_matches_float64_reference(norm, activation, skip):
    torch.manual_seed(0)
    model = create_model(
        "mlp", norm=norm, in_shape=(2, 3), num_classes=4, widths=(5, 5, 5),
        activation=activation, skip=skip, init="glorot",
    ).double()
    for m in weighted_layers(model):  # non-zero biases so a dropped/kept bias shows
        if m.bias is not None:
            nn.init.uniform_(m.bias, -1, 1)
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    h = x.reshape(8, 6)
    layers = weighted_layers(model)
    for i, layer in enumerate(layers[:-1]):
        z = h @ layer.weight.T + (layer.bias if layer.bias is not None else 0)
        z = _batch_norm_train(z, 1e-5) if norm == "bn" else z
        out = REFERENCE_ACTS[activation](z)
        h = h + out if (skip and i > 0) else out  # the first layer changes width: no skip
    expected = h @ layers[-1].weight.T + layers[-1].bias
    torch.testing.assert_close(model(x), expected, rtol=1e-10, atol=1e-10)


def test_ioffe_default_architecture():
    model = create_model("mlp", norm="bn", in_shape=(1, 28, 28), num_classes=10)
    shapes = [tuple(m.weight.shape) for m in weighted_layers(model)]
    assert shapes == [(100, 784), (100, 100), (100, 100), (10, 100)]
    assert all(isinstance(unit.act, nn.Sigmoid) for unit in model.hidden)


def test_mlp_dropout_active_in_train_only():
    torch.manual_seed(0)
    model = create_model("mlp", norm="none", in_shape=(6,), num_classes=3, width=64, dropout=0.5)
    x = torch.randn(4, 6)
    assert not torch.equal(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
    plain = create_model("mlp", norm="none", in_shape=(6,), num_classes=3, width=64)
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())


@pytest.mark.parametrize("norm_last", [True, False])
def test_dln_without_norm_is_the_matrix_product(norm_last):
    torch.manual_seed(0)
    model = create_model(
        "dln", norm="none", in_shape=(10,), num_classes=10, norm_last=norm_last
    ).double()
    product = torch.eye(10, dtype=torch.float64)
    for layer in weighted_layers(model):  # W_25 … W_2 W_1
        product = layer.weight.detach() @ product
    x = torch.randn(7, 10, dtype=torch.float64)
    torch.testing.assert_close(model(x), x @ product.T, rtol=1e-9, atol=1e-12)


def _shortcut_reference(x: torch.Tensor, c_out: int, stride: int) -> torch.Tensor:
    """Option A by explicit loops: keep every stride-th position, zero channels around."""
    n, c_in, *size = x.shape
    out_size = [math.ceil(s / stride) for s in size]
    out = torch.zeros(n, c_out, *out_size, dtype=x.dtype)
    lo = (c_out - c_in) // 2
    for c in range(c_in):
        for pos in torch.cartesian_prod(*[torch.arange(s) for s in out_size]).reshape(
            -1, len(size)
        ):
            src = tuple(int(p) * stride for p in pos)
            out[(slice(None), lo + c, *pos.tolist())] = x[(slice(None), c, *src)]
    return out


@pytest.mark.parametrize(
    ("shape", "c_out", "stride"),
    [
        pytest.param((2, 4, 6, 6), 8, 2, id="2d_downsample"),
        pytest.param((2, 4, 7, 5), 8, 2, id="2d_odd_size"),
        pytest.param((2, 3, 9), 6, 2, id="1d_downsample"),
        pytest.param((2, 4, 5, 5), 4, 1, id="2d_identity"),
    ],
)
def test_option_a_shortcut_matches_loop_reference(shape, c_out, stride):
    x = torch.randn(*shape)
    shortcut = ShortcutA(shape[1], c_out, stride, len(shape) - 2)
    torch.testing.assert_close(shortcut(x), _shortcut_reference(x, c_out, stride))
    assert not list(shortcut.parameters())  # option A adds no weighted layer


@pytest.mark.parametrize("skip", [True, False], ids=["residual", "plain"])
@pytest.mark.parametrize(("kind", "shape"), [("image", (3, 8, 8)), ("signal", (1, 12))])
def test_resnet_blocks_add_the_shortcut_only_with_skip(skip, kind, shape):
    torch.manual_seed(0)
    model = create_model(
        "resnet20", norm="bn", in_shape=shape, num_classes=3, width=0.25, skip=skip
    )
    seen = {}
    blocks = {"same": model.stage1[1], "down": model.stage2[0]}
    hooks = [b.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, (i[0], o)))
             for k, b in blocks.items()]
    hooks += [b.unit2.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k + "2", o))
              for k, b in blocks.items()]
    model(torch.randn(4, *shape))
    for h in hooks:
        h.remove()
    for key, block in blocks.items():
        x, out = seen[key]
        residual = seen[key + "2"]
        stride = 2 if key == "down" else 1
        c_out = block.unit2.layer.out_channels
        expected = residual + _shortcut_reference(x, c_out, stride) if skip else residual
        torch.testing.assert_close(out, expected.clamp_min(0))


@pytest.mark.parametrize(
    ("in_shape", "conv", "n_pools"),
    [
        pytest.param((3, 32, 32), nn.Conv2d, 5, id="cifar"),
        pytest.param((1, 28, 28), nn.Conv2d, 4, id="mnist_28_to_1"),
        pytest.param((1, 40), nn.Conv1d, 5, id="mnist1d_40_to_1"),
    ],
)
def test_vgg16_layout(in_shape, conv, n_pools):
    model = create_model("vgg16", norm="bn", in_shape=in_shape, num_classes=10, width=0.25)
    convs = [s.layer for s in norm_sites(model)[:13]]
    assert all(type(c) is conv for c in convs)
    # Simonyan & Zisserman Table 1, column D, at a quarter of the width.
    expected = [64, 64, 128, 128, 256, 256, 256] + [512] * 6
    assert [c.out_channels for c in convs] == [w // 4 for w in expected]
    pools = [m for m in model.modules() if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d))]
    assert len(pools) == n_pools
    fc = [m for m in weighted_layers(model) if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in fc] == [(128, 128), (128, 128), (10, 128)]
    assert model(torch.rand(2, *in_shape)).shape == (2, 10)
