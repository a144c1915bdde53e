"""The contract every registered norm keeps, parametrized over ``list_norms()``."""

from __future__ import annotations

import pytest
import torch
from _layers_helpers import (
    ABSORBS_BIAS,
    AFFINE,
    BATCH_STATS,
    NOISY,
    NORMS,
    SHAPES,
    channel_view,
    freeze_noise,
)
from torch import nn

from bnlab.layers import create_norm, list_norms

BN_KEYS = set(nn.BatchNorm2d(3).state_dict())


def test_list_norms_has_the_twelve_names():
    expected = {"bn", "bn_reference", "noisy_bn", "noise", "l1", "l2", "linf", "ghost_bn",
                "batch_renorm", "ln", "gn", "none"}  # fmt: skip
    assert set(list_norms()) == expected


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"valid norms: .*batch_renorm.*bn"):
        create_norm("batchnorm9000", 4)


def test_names_are_normalized():
    assert type(create_norm("Batch-Renorm", 3)) is type(create_norm("batch_renorm", 3))


@pytest.mark.parametrize("name", NORMS)
@pytest.mark.parametrize("channels", [1, 5], ids=["C1", "C5"])
def test_builds_with_name_and_channels_alone(name, channels):
    norm = create_norm(name, channels)
    x = torch.randn(4, channels, 3)
    assert norm(x).shape == x.shape
    assert norm.absorbs_bias is ABSORBS_BIAS[name]


@pytest.mark.parametrize("name", NORMS)
def test_accepts_full_bn_signature(name):
    norm = create_norm(
        name, 3, eps=1e-3, momentum=None, affine=True, track_running_stats=True,
        device="cpu", dtype=torch.float64,
    )  # fmt: skip
    x = torch.randn(5, 3, dtype=torch.float64)
    assert norm(x).dtype == torch.float64
    for p in norm.parameters():
        assert p.dtype == torch.float64


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("name", NORMS)
def test_gradcheck_float64_train(name, shape):
    torch.manual_seed(0)
    norm = create_norm(name, shape[1], dtype=torch.float64, momentum=0.0).train()
    if name == "batch_renorm":
        # r and d are stop-gradient constants: gradcheck is exact only where both clip.
        norm.running_mean.fill_(100.0)
        norm.running_var.fill_(1e-4)
    freeze_noise(norm)
    for p in norm.parameters():
        p.data.uniform_(0.5, 1.5)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    params = tuple(norm.parameters())

    def f(x_, *ps):
        with torch.nn.utils.stateless._reparametrize_module(
            norm, dict(zip([n for n, _ in norm.named_parameters()], ps, strict=True))
        ):
            return norm(x_)

    assert torch.autograd.gradcheck(f, (x, *params), atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("name", NORMS)
def test_gradcheck_float64_eval(name):
    torch.manual_seed(1)
    norm = create_norm(name, 3, dtype=torch.float64).eval()
    x = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(norm, (x,), atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("name", NORMS)
def test_eval_is_per_sample_and_deterministic(name):
    torch.manual_seed(2)
    norm = create_norm(name, 3)
    norm(torch.randn(8, 3, 4) * 2 + 1)  # move running stats away from init
    norm.eval()
    x = torch.randn(6, 3, 4)
    full = norm(x)
    torch.testing.assert_close(norm(x[:2]), full[:2], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(norm(x), full, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(BATCH_STATS - {"batch_renorm"}))
def test_train_uses_batch_stats_eval_uses_running(name):
    # batch_renorm is excluded by design: its r, d correct the output towards running stats
    torch.manual_seed(3)
    norm = create_norm(name, 3)
    x = torch.randn(8, 3, 4) * 3 + 2
    y_train = norm(x)
    norm.eval()
    y_eval = norm(x)
    # batch statistics centre each channel; running statistics after one step do not
    assert y_train.mean(dim=(0, 2)).abs().max() < 0.3
    assert y_eval.mean(dim=(0, 2)).abs().min() > 0.5


@pytest.mark.parametrize("name", sorted(BATCH_STATS))
def test_running_mean_follows_momentum(name):
    torch.manual_seed(4)
    norm = create_norm(name, 3, momentum=0.25)
    norm.running_mean.fill_(1.0)
    x = torch.randn(8, 3, 5) + 4
    norm(x)
    expected = 0.75 * 1.0 + 0.25 * x.mean(dim=(0, 2))
    torch.testing.assert_close(norm.running_mean, expected)
    assert norm.num_batches_tracked.item() == 1
    norm.eval()
    norm(x)
    assert norm.num_batches_tracked.item() == 1  # eval does not count


@pytest.mark.parametrize("name", sorted(BATCH_STATS))
def test_cumulative_average_with_momentum_none(name):
    torch.manual_seed(5)
    norm = create_norm(name, 2, momentum=None)
    batches = [torch.randn(6, 2, 3) + k for k in range(3)]
    for b in batches:
        norm(b)
    expected = torch.stack([b.mean(dim=(0, 2)) for b in batches]).mean(0)
    torch.testing.assert_close(norm.running_mean, expected)


@pytest.mark.parametrize("name", sorted(set(NORMS) - BATCH_STATS))
def test_per_sample_norms_have_no_running_stats(name):
    norm = create_norm(name, 3)
    assert not list(norm.buffers())
    x = torch.randn(4, 3, 2)
    if name not in NOISY:
        torch.testing.assert_close(norm(x), norm.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", NORMS)
def test_state_dict_round_trip(name):
    torch.manual_seed(6)
    src = create_norm(name, 3)
    for p in src.parameters():
        p.data.uniform_(0.5, 1.5)
    src(torch.randn(8, 3, 4) * 2 + 1)
    dst = create_norm(name, 3)
    dst.load_state_dict(src.state_dict())
    if name in BATCH_STATS:
        assert set(src.state_dict()) == BN_KEYS
    x = torch.randn(5, 3, 4)
    torch.testing.assert_close(dst.eval()(x), src.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(BATCH_STATS))
def test_loads_torch_batchnorm_checkpoint(name):
    torch_bn = nn.BatchNorm1d(3)
    torch_bn(torch.randn(8, 3) * 2 + 1)
    norm = create_norm(name, 3)
    norm.load_state_dict(torch_bn.state_dict())
    x = torch.randn(4, 3)
    torch.testing.assert_close(norm.eval()(x), torch_bn.eval()(x))


@pytest.mark.parametrize("name", sorted(AFFINE))
def test_affine_false_equals_unit_affine(name):
    torch.manual_seed(7)
    plain = create_norm(name, 3, affine=False)
    unit = create_norm(name, 3)
    assert not list(plain.parameters())
    assert plain.weight is None and plain.bias is None
    if name in NOISY:
        unit.set_noise_state(plain.noise_state())
    x = torch.randn(6, 3, 4)
    torch.testing.assert_close(plain(x), unit(x))


@pytest.mark.parametrize("name", sorted(BATCH_STATS))
def test_track_running_stats_false_uses_batch_stats_in_eval(name):
    torch.manual_seed(8)
    norm = create_norm(name, 3, track_running_stats=False)
    assert norm.running_mean is None and norm.running_var is None
    assert norm.num_batches_tracked is None
    x = torch.randn(6, 3, 4) * 3 + 2
    y_eval = norm.eval()(x)
    assert y_eval.mean(dim=(0, 2)).abs().max() < 0.3
    if name not in NOISY:
        torch.testing.assert_close(y_eval, norm.train()(x))


@pytest.mark.parametrize("name", NORMS)
def test_rank_one_input_is_an_error(name):
    with pytest.raises(ValueError, match=r"shape \(3,\).*unsqueeze"):
        create_norm(name, 3)(torch.randn(3))


@pytest.mark.parametrize("name", NORMS)
def test_channel_mismatch_is_an_error(name):
    with pytest.raises(ValueError, match=r"3 channels but got shape \(4, 5\).*num_features=5"):
        create_norm(name, 3)(torch.randn(4, 5))


@pytest.mark.parametrize("name", sorted(BATCH_STATS))
@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1)], ids=["N1", "N1_L1"])
def test_one_value_per_channel_in_training_is_an_error(name, shape):
    norm = create_norm(name, 3)
    with pytest.raises(ValueError, match="more than one value per channel"):
        norm(torch.randn(*shape))
    norm.eval()
    assert norm(torch.randn(*shape)).shape == shape  # eval mode is fine


@pytest.mark.parametrize("name", sorted(BATCH_STATS))
def test_reset_running_stats_and_parameters(name):
    norm = create_norm(name, 3)
    norm(torch.randn(6, 3) + 5)
    norm.weight.data.fill_(2.0)
    norm.reset_parameters()
    torch.testing.assert_close(norm.running_mean, torch.zeros(3))
    torch.testing.assert_close(norm.running_var, torch.ones(3))
    assert norm.num_batches_tracked.item() == 0
    torch.testing.assert_close(norm.weight.data, torch.ones(3))
    assert "eps=1e-05, momentum=0.1" in repr(norm)


def test_channel_view_helper_broadcasts():
    x = torch.zeros(2, 3, 4)
    assert channel_view(torch.arange(3.0), x).shape == (1, 3, 1)


@pytest.mark.parametrize("name", NORMS)
def test_channels_last_input_matches_contiguous(name):
    torch.manual_seed(9)
    norm = create_norm(name, 3, momentum=0.0)  # same running stats for both passes
    x = torch.randn(4, 3, 2, 5)
    g = torch.randn(4, 3, 2, 5)
    state = norm.noise_state() if name in NOISY else None
    results = []
    for inp in (x, x.to(memory_format=torch.channels_last)):
        if state is not None:
            norm.set_noise_state(state)  # same draws for both layouts
        leaf = inp.clone().requires_grad_()
        y = norm(leaf)
        y.backward(g)
        results.append((y.detach().contiguous(), leaf.grad.contiguous()))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-5, atol=1e-6)
