"""Santurkar et al. 2018's noise experiment (§2.1, Algorithm 1; PAPERS.md §2.3).

* ``noisy_bn``: BN followed by time-varying, non-Gaussian noise, to show that BN trains well
  even when the activation distributions are made *less* stable.
* ``noise``: the same noise on the identity ("standard network + noise", the control that
  does not train).

The noise is drawn in training mode only, from each layer's own ``torch.Generator``, seeded
at construction from the global torch RNG (so layers differ, and a run's seed fixes them).
:meth:`NoiseSource.noise_state` / :meth:`NoiseSource.set_noise_state` let probes and
checkpoints freeze and replay it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bnlab.layers import functional as bnf
from bnlab.layers.base import check_input
from bnlab.layers.batchnorm import BatchNorm
from bnlab.layers.registry import register_norm

__all__ = ["Noise", "NoiseSource", "NoisyBatchNorm"]


class NoiseSource:
    """A mixin that owns a noise generator and the Santurkar noise parameters.

    Args:
        n_mu: per-channel shift μ_t ~ U(−n_mu, n_mu).
        n_sigma: per-channel scale σ_t ~ U(1, n_sigma).
        r_mu: per-element shift m ~ U(μ_t − r_mu, μ_t + r_mu).
        r_sigma: per-element scale s ~ N(σ_t, r_sigma) (standard deviation).
        device: where the generator starts (it follows the input's device).
    """

    def _init_noise(
        self,
        n_mu: float,
        n_sigma: float,
        r_mu: float,
        r_sigma: float,
        device: torch.device | str | None,
    ) -> None:
        if n_mu < 0 or n_sigma < 1 or r_mu < 0 or r_sigma < 0:
            raise ValueError(
                "noise needs n_mu >= 0, n_sigma >= 1, r_mu >= 0, r_sigma >= 0; got "
                f"n_mu={n_mu}, n_sigma={n_sigma}, r_mu={r_mu}, r_sigma={r_sigma}"
            )
        self.n_mu, self.n_sigma, self.r_mu, self.r_sigma = n_mu, n_sigma, r_mu, r_sigma
        # One draw from the global RNG: layers get different streams, fixed by the run seed.
        seed = int(torch.randint(0, 2**62, (1,)).item())
        self._generator = torch.Generator(device=torch.device(device or "cpu"))
        self._generator.manual_seed(seed)

    def _generator_for(self, device: torch.device) -> torch.Generator:
        """The generator on ``device``; moving devices reseeds from the old stream."""
        if self._generator.device != device:
            seed = int(torch.randint(0, 2**62, (1,), generator=self._generator).item())
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(seed)
        return self._generator

    def noise_generator(self) -> torch.Generator:
        """The generator the noise is drawn from (a CUDA graph capture registers it)."""
        return self._generator

    def noise_state(self) -> dict[str, Any]:
        """The generator's state; :meth:`set_noise_state` on it replays the next draws."""
        return {"device": str(self._generator.device), "rng": self._generator.get_state()}

    def set_noise_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`noise_state` (a copy is taken).

        Raises:
            ValueError: if ``state`` is not a dict with ``device`` and ``rng``.
        """
        if not isinstance(state, dict) or not {"device", "rng"} <= state.keys():
            raise ValueError("set_noise_state expects the dict returned by noise_state()")
        device = torch.device(state["device"])
        if self._generator.device == device:
            # In place: a CUDA graph that registered this generator keeps drawing from it.
            self._generator.set_state(state["rng"].clone())
            return
        generator = torch.Generator(device=device)
        generator.set_state(state["rng"].clone())
        self._generator = generator

    def _noise_repr(self) -> str:
        return f"n_mu={self.n_mu}, n_sigma={self.n_sigma}, r_mu={self.r_mu}, r_sigma={self.r_sigma}"

    def _draw(self, a: Tensor, reuse_m: bool = False) -> tuple[Tensor, Tensor]:
        """Draw the noise ``(s, m)`` for ``a`` (N, C, *); ``s * a + m`` is the noisy value.

        With ``reuse_m`` the shift ``m`` is drawn into a buffer kept between steps: only
        for callers that consume ``m`` at once and never let autograd save it.
        """
        gen = self._generator_for(a.device)
        args = (a, gen, self.n_mu, self.n_sigma, self.r_mu, self.r_sigma)
        if reuse_m and a.is_cuda and torch.cuda.is_current_stream_capturing():
            # a generator's state cannot be read during a CUDA graph capture, and a capture
            # is never inside a torch.func transform: no rewind needed
            return bnf.santurkar_noise(*args, out_m=self._m_buffer(a))
        if reuse_m:
            state = gen.get_state()
            try:
                return bnf.santurkar_noise(*args, out_m=self._m_buffer(a))
            except RuntimeError:
                # Inside torch.func transforms a tensor kept outside cannot be written:
                # rewind the stream (so the noise is the same) and draw into fresh memory.
                gen.set_state(state)
        return bnf.santurkar_noise(*args)

    def _m_buffer(self, a: Tensor) -> Tensor:
        # Drawing into memory that is already mapped avoids the page faults of a fresh
        # activation-sized tensor every step (~0.25x BatchNorm2d on CPU), at the price of
        # one activation-sized tensor kept per layer. Not a registered buffer: it holds no
        # state, so it is not saved, loaded or snapshotted.
        buf = getattr(self, "_m_cache", None)
        if buf is None or buf.shape != a.shape or buf.dtype != a.dtype or buf.device != a.device:
            buf = torch.empty(a.shape, dtype=a.dtype, device=a.device)
            self._m_cache = buf
        return buf


def _noisy(s: Tensor, m: Tensor, a: Tensor) -> Tensor:
    """``s * a + m``, written into the fresh noise tensor ``m`` when possible.

    Writing in place saves allocating a full-size output (about a third of the layer's
    non-random cost on CPU). Under ``torch.func.vmap`` ``a`` is batched but the noise is
    not, and torch refuses the in-place write before touching ``m``: then out of place.
    """
    try:
        return m.addcmul_(s, a)
    except RuntimeError:
        return torch.addcmul(m, s, a)


@register_norm("noisy_bn")
class NoisyBatchNorm(NoiseSource, BatchNorm):
    r"""BN followed by Santurkar et al.'s time-varying noise, in training mode only.

    Each training forward draws, per channel, :math:`\mu_t \sim U(-n_\mu, n_\mu)` and
    :math:`\sigma_t \sim U(1, n_\sigma)`, and per element :math:`m \sim U(\mu_t \pm r_\mu)`,
    :math:`s \sim N(\sigma_t, r_\sigma)`; the output is :math:`s \cdot a + m` where ``a``
    is the BN output after γ, β (``noise_after_affine=True``, the default; PAPERS.md §2.3
    infers "after the full BN layer") or :math:`\gamma (s \hat{x} + m) + \beta` otherwise.

    Args:
        num_features: C. The BN signature follows (see :class:`NormBase`).
        n_mu: default 0.5 (keyword, as are the rest).
        n_sigma: default 1.25.
        r_mu: default 0.1.
        r_sigma: default 0.1 (a standard deviation).
        noise_after_affine: where the noise enters, default after γ, β.
        **kwargs: ``eps``, ``momentum``, ``affine``, ``track_running_stats``, ``device``,
            ``dtype``.
    """

    def __init__(
        self,
        num_features: int,
        *,
        n_mu: float = 0.5,
        n_sigma: float = 1.25,
        r_mu: float = 0.1,
        r_sigma: float = 0.1,
        noise_after_affine: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_features, **kwargs)
        self._init_noise(n_mu, n_sigma, r_mu, r_sigma, kwargs.get("device"))
        self.noise_after_affine = noise_after_affine

    def _normalize(
        self, x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
        batch_stats: bool, momentum: float,
    ) -> Tensor:  # fmt: skip
        # BN's hook, then the noise in training mode only.
        if not self.training:
            return super()._normalize(x, running_mean, running_var, batch_stats, momentum)
        if self.noise_after_affine or not self.affine:
            # a fresh tensor that BN's backward does not need: the noise goes in in place
            a = super()._normalize(x, running_mean, running_var, batch_stats, momentum)
            s, m = self._draw(a, reuse_m=True)
            return a.mul_(s).add_(m)
        x_hat = F.batch_norm(
            x, running_mean, running_var, None, None, batch_stats, momentum, self.eps
        )
        s, m = self._draw(x_hat)
        noisy = _noisy(s, m, x_hat)
        shape = (1, -1, *([1] * (x.dim() - 2)))
        return torch.addcmul(self.bias.view(shape), noisy, self.weight.view(shape))

    def extra_repr(self) -> str:
        """The BN arguments plus the noise parameters."""
        return (
            f"{super().extra_repr()}, {self._noise_repr()}, "
            f"noise_after_affine={self.noise_after_affine}"
        )


@register_norm("noise")
class Noise(NoiseSource, nn.Module):
    """The identity plus Santurkar et al.'s noise in training mode (no normalization).

    It accepts the BN signature (``eps``, ``momentum``, ``affine``, ``track_running_stats``
    are ignored: there is nothing to normalize or learn) and the noise options of
    :class:`NoisyBatchNorm`. It has no shift of its own to replace a bias, so
    ``absorbs_bias = False``.

    Args:
        num_features: C.
        eps: ignored.
        momentum: ignored.
        affine: ignored.
        track_running_stats: ignored.
        device: where the noise generator starts.
        dtype: ignored.
        n_mu: default 0.5 (keyword, as are the rest).
        n_sigma: default 1.25.
        r_mu: default 0.1.
        r_sigma: default 0.1.
    """

    absorbs_bias: ClassVar[bool] = False

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        n_mu: float = 0.5,
        n_sigma: float = 1.25,
        r_mu: float = 0.1,
        r_sigma: float = 0.1,
    ) -> None:
        super().__init__()
        del eps, momentum, affine, track_running_stats, dtype
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be an int >= 1, got {num_features!r}")
        self.num_features = num_features
        self._init_noise(n_mu, n_sigma, r_mu, r_sigma, device)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``s * x + m`` in training mode and ``x`` in eval mode; shape of ``x``."""
        check_input(x, self.num_features, batch_stats=False, name="Noise")
        if not self.training:
            return x
        s, m = self._draw(x)
        return _noisy(s, m, x)

    def extra_repr(self) -> str:
        """C and the noise parameters."""
        return f"{self.num_features}, {self._noise_repr()}"
