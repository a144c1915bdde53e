"""``noisy_bn`` and ``noise``: the noise of Santurkar et al. 2018 §2.1 and its replay API."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from bnlab.layers import create_norm

C, M = 400, 2500  # channels, values per channel: tight moment estimates, fast draws


def _draw_noise(**kwargs):
    """Recover (s, m) from the `noise` layer by replay: f(0) = m and f(1) = s + m."""
    torch.manual_seed(0)
    layer = create_norm("noise", C, **kwargs)
    state = layer.noise_state()
    m = layer(torch.zeros(M, C))
    layer.set_noise_state(state)
    s = layer(torch.ones(M, C)) - m
    return s.double(), m.double()


def test_shift_noise_moments():
    _, m = _draw_noise()
    # (C,) per-channel centres, each ~ U(-0.5, 0.5); the midrange of a uniform sample
    # estimates its centre to ~1e-4 here, far tighter than the mean
    mu_t = (m.amax(0) + m.amin(0)) / 2
    within = m - mu_t
    # per element U(mu_t - 0.1, mu_t + 0.1): std 0.1/sqrt(3), hard bounds +-0.1
    assert within.std().item() == pytest.approx(0.1 / math.sqrt(3), rel=0.01)
    assert within.abs().max().item() <= 0.1 + 1e-3
    assert within.abs().max().item() >= 0.099
    # the channel centres are uniform on (-0.5, 0.5) (mean of 2500 draws: error ~1e-3)
    assert stats.kstest(mu_t.numpy(), stats.uniform(loc=-0.5, scale=1.0).cdf).pvalue > 1e-3
    assert mu_t.abs().max().item() < 0.5 + 0.005


def test_scale_noise_moments():
    s, _ = _draw_noise()
    sigma_t = s.mean(0)  # (C,) each ~ U(1, 1.25)
    within = s - sigma_t
    # per element N(sigma_t, 0.1): std 0.1 (not variance 0.1), Gaussian kurtosis 3
    assert within.std().item() == pytest.approx(0.1, rel=0.01)
    assert stats.kurtosis(within.flatten().numpy()) == pytest.approx(0.0, abs=0.05)
    assert stats.kstest(sigma_t.numpy(), stats.uniform(loc=1.0, scale=0.25).cdf).pvalue > 1e-3


def test_noise_options_are_used():
    s, m = _draw_noise(n_mu=2.0, n_sigma=3.0, r_mu=0.5, r_sigma=0.3)
    assert (m - m.mean(0)).std().item() == pytest.approx(0.5 / math.sqrt(3), rel=0.01)
    assert (s - s.mean(0)).std().item() == pytest.approx(0.3, rel=0.01)
    assert stats.kstest(s.mean(0).numpy(), stats.uniform(loc=1.0, scale=2.0).cdf).pvalue > 1e-3


@pytest.mark.parametrize("name", ["noisy_bn", "noise"])
def test_set_noise_state_replays_exactly(name):
    torch.manual_seed(1)
    layer = create_norm(name, 3)
    x = torch.randn(6, 3, 4)
    state = layer.noise_state()
    first = layer(x)
    assert not torch.equal(layer(x), first)  # the noise varies step to step
    layer.set_noise_state(state)
    torch.testing.assert_close(layer(x), first, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["noisy_bn", "noise"])
def test_seeded_from_global_rng_then_independent_of_it(name):
    x = torch.randn(6, 3)
    torch.manual_seed(5)
    a, b = create_norm(name, 3), create_norm(name, 3)
    torch.manual_seed(5)
    a_again = create_norm(name, 3)
    assert not torch.equal(a(x), b(x))  # two layers, two streams
    global_state = torch.get_rng_state()
    out = a_again(x)
    assert torch.equal(torch.get_rng_state(), global_state)  # forward leaves the global RNG
    a.set_noise_state(a_again.noise_state())
    torch.testing.assert_close(a(x), a_again(x), rtol=0, atol=0)
    assert not torch.equal(out, a_again(x))


def test_noise_is_off_in_eval():
    torch.manual_seed(2)
    x = torch.randn(6, 3, 4)
    noise = create_norm("noise", 3).eval()
    torch.testing.assert_close(noise(x), x, rtol=0, atol=0)
    noisy, bn = create_norm("noisy_bn", 3), create_norm("bn", 3)
    noisy(x), bn(x)
    torch.testing.assert_close(noisy.eval()(x), bn.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize("after", [True, False], ids=["after_affine", "before_affine"])
def test_noise_position_relative_to_affine(after):
    torch.manual_seed(3)
    x = torch.randn(8, 3, 5)
    layer = create_norm("noisy_bn", 3, noise_after_affine=after)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
        layer.bias.copy_(torch.tensor([1.0, -3.0, 0.25]))
    state = layer.noise_state()
    y = layer(x)
    # recover s and m from the same draws on the identity layer with the same stream
    ident = create_norm("noise", 3)
    ident.set_noise_state(state)
    m = ident(torch.zeros_like(x))
    ident.set_noise_state(state)
    s = ident(torch.ones_like(x)) - m
    var, mean = torch.var_mean(x, (0, 2), correction=0, keepdim=True)
    x_hat = (x - mean) / torch.sqrt(var + 1e-5)
    w, b = layer.weight.detach().view(1, 3, 1), layer.bias.detach().view(1, 3, 1)
    expected = s * (w * x_hat + b) + m if after else w * (s * x_hat + m) + b
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["noisy_bn", "noise"])
def test_deepcopy_and_pickle_keep_the_stream(name):
    import copy
    import pickle

    layer = create_norm(name, 3)
    x = torch.randn(5, 3)
    twin, unpickled = copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))
    expected = layer(x)
    torch.testing.assert_close(twin(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(unpickled(x), expected, rtol=0, atol=0)


def test_set_noise_state_rejects_garbage():
    with pytest.raises(ValueError, match="noise_state"):
        create_norm("noise", 3).set_noise_state({"seed": 1})


def test_two_forwards_before_one_backward_give_each_its_own_noise():
    """The shift is drawn into memory kept between steps; outputs and gradients of two
    forwards that share one backward must still be those of independent draws."""
    torch.manual_seed(3)
    layer = create_norm("noisy_bn", 5).double()
    x1 = torch.randn(16, 5, 3, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(16, 5, 3, dtype=torch.float64, requires_grad=True)
    state = layer.noise_state()
    y1, y2 = layer(x1), layer(x2)
    (y1 * y1).sum().add((y2 * 3).sum()).backward()

    # Twin: plain BN plus the same noise, drawn into fresh tensors in the same order.
    from bnlab.layers.functional import santurkar_noise

    layer.set_noise_state(state)  # rewind the layer's stream and draw the same noise again
    gen = layer._generator
    bn = torch.nn.functional.batch_norm
    refs = []
    for x in (x1, x2):
        xr = x.detach().clone().requires_grad_(True)
        a = bn(xr, None, None, layer.weight, layer.bias, True, 0.0, layer.eps)
        s, m = santurkar_noise(a, gen)
        refs.append((xr, s * a + m))
    (refs[0][1] ** 2).sum().add((refs[1][1] * 3).sum()).backward()
    torch.testing.assert_close(y1, refs[0][1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y2, refs[1][1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x1.grad, refs[0][0].grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x2.grad, refs[1][0].grad, rtol=1e-10, atol=1e-12)
