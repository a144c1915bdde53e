"""The shared base of every bnlab norm: the ``torch.nn.BatchNorm`` contract, once.

:class:`NormBase` owns the one ``forward``: it checks the input, counts the batch, picks the
running-average factor and the buffers, and calls the subclass hook
:meth:`NormBase._normalize` with them. Subclasses override that hook (and class attributes,
``extra_repr`` for their own options) only; signature, parameters, buffers, resets, input
checks, the momentum rule and ``extra_repr`` live here (the shape of PyTorch's
``_NormBase``/``_BatchNorm``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

__all__ = ["NormBase", "check_input"]


def check_input(x: Tensor, num_features: int, *, batch_stats: bool, name: str) -> None:
    """Validate an input of shape (N, C, *) for a norm over ``num_features`` channels.

    Args:
        x: the input, channels in dim 1.
        num_features: the expected C.
        batch_stats: whether statistics are taken over every dim but 1 (then at least two
            values per channel are needed).
        name: the module name for the message.

    Raises:
        ValueError: rank < 2, a channel mismatch, or one value per channel with batch
            statistics (the message says how to fix each).
    """
    if x.dim() < 2:
        raise ValueError(
            f"{name} expects an input of shape (N, C, *) with channels in dim 1, got shape "
            f"{tuple(x.shape)}; add a batch dim (x.unsqueeze(0)) or reshape to (N, C)"
        )
    if x.shape[1] != num_features:
        raise ValueError(
            f"{name} was built for {num_features} channels but got shape {tuple(x.shape)} "
            f"with {x.shape[1]} channels in dim 1; build it with num_features={x.shape[1]}"
        )
    if batch_stats and x.numel() // x.shape[1] <= 1:
        raise ValueError(
            f"{name} needs more than one value per channel to take batch statistics, got shape "
            f"{tuple(x.shape)}; use a batch of at least 2, call .eval(), or use 'ln'/'gn'"
        )


class NormBase(nn.Module):
    r"""Base of the bnlab norms with parameters, carrying the ``torch.nn.BatchNorm`` contract.

    Subclasses with ``uses_batch_stats = False`` (``ln``, ``gn``) accept but ignore
    ``momentum`` and ``track_running_stats`` and have no running buffers.

    A subclass implements one hook, :meth:`_normalize`, which receives what
    :meth:`forward` decided: the running buffers to update or use, whether to normalize with
    batch statistics, and the running-average factor of this step. Its arguments are those of
    the functions in :mod:`bnlab.layers.functional`, so a hook is usually one call.

    Running statistics follow PyTorch's momentum convention, with ``m = momentum``:

    .. math::
        \hat{x}_{\text{new}} = (1 - m)\,\hat{x} + m\,x_{\text{batch}}

    and ``momentum=None`` gives the cumulative average
    :math:`\hat{x}_{\text{new}} = \hat{x} + (x_{\text{batch}} - \hat{x}) / t` after ``t``
    batches (Ioffe & Szegedy 2015, Algorithm 2). ``num_batches_tracked`` counts ``t``.

    Args:
        num_features: C, the number of channels (dim 1 of inputs (N, C, *)).
        eps: added to the variance (or squared scale) before the square root.
        momentum: the running-average factor ``m`` above, or ``None`` for the cumulative average.
        affine: learn a per-channel scale ``weight`` (γ, init 1) and shift ``bias`` (β, init 0).
        track_running_stats: keep ``running_mean``, ``running_var``, ``num_batches_tracked``
            and use them in eval mode; if ``False`` batch statistics are used in both modes.
        device: device of parameters and buffers.
        dtype: dtype of parameters and buffers.

    Attributes:
        absorbs_bias: whether the norm subtracts a per-channel mean, making a bias in the
            preceding layer redundant (models drop it then).
        uses_batch_stats: whether the norm takes statistics over the batch (and so has
            running statistics).
    """

    absorbs_bias: ClassVar[bool] = True
    uses_batch_stats: ClassVar[bool] = True
    _version = 2  # version 2 added num_batches_tracked, as in torch

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be an int >= 1, got {num_features!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum!r}")
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats and self.uses_batch_stats
        if affine:
            self.weight = nn.Parameter(torch.empty(num_features, **kw))
            self.bias = nn.Parameter(torch.empty(num_features, **kw))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **kw))
            self.register_buffer("running_var", torch.ones(num_features, **kw))
            self.register_buffer(
                "num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device)
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Set ``running_mean`` to 0, ``running_var`` to 1 and ``num_batches_tracked`` to 0."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset running statistics, γ to 1 and β to 0."""
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        """The constructor arguments, as ``torch.nn.BatchNorm`` prints them."""
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )

    def forward(self, x: Tensor) -> Tensor:
        """Normalize ``x`` of shape (N, C, *); returns the same shape.

        Checks the input, counts the batch (training with running statistics), then calls
        :meth:`_normalize` with the buffers and factor of this step.
        """
        self._check_input(x)
        factor = self._update_factor()
        running_mean, running_var = self._running()
        return self._normalize(x, running_mean, running_var, self._batch_stats_mode(), factor)

    def _normalize(
        self,
        x: Tensor,
        running_mean: Tensor | None,
        running_var: Tensor | None,
        batch_stats: bool,
        momentum: float,
    ) -> Tensor:
        """The subclass hook: normalize a checked input ``x`` (N, C, *).

        Args:
            x: the input, already checked (rank, channels, values per channel).
            running_mean: the buffer to update (training) or to use (eval), or ``None``
                (no running statistics are kept, or they are not used in this mode).
            running_var: likewise.
            batch_stats: normalize with the statistics of this batch (``True``: training,
                or ``track_running_stats=False``) or with the running buffers.
            momentum: the running-average factor of this step (0 when nothing is updated;
                ``1/t`` for ``momentum=None``), PyTorch's convention.

        Returns:
            The normalized tensor, shape of ``x``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement _normalize")

    # -- helpers for subclasses ----------------------------------------------------------

    def _check_input(self, x: Tensor) -> None:
        check_input(
            x,
            self.num_features,
            batch_stats=self.uses_batch_stats and self._batch_stats_mode(),
            name=type(self).__name__,
        )

    def _batch_stats_mode(self) -> bool:
        """True when this forward normalizes with batch statistics."""
        return self.training or not self.track_running_stats

    def _update_factor(self) -> float:
        """Count this batch and return the running-average factor (0 when not updating).

        Returns ``momentum``, or ``1 / num_batches_tracked`` for ``momentum=None``.
        """
        if not (self.training and self.track_running_stats):
            return 0.0
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def _running(self) -> tuple[Tensor | None, Tensor | None]:
        """The running buffers to update (training) or use (eval), else ``(None, None)``."""
        if self.training and not self.track_running_stats:
            return None, None
        return self.running_mean, self.running_var

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Checkpoints from before num_batches_tracked existed (torch version < 2) load with
        # a count of 0, exactly as torch.nn.BatchNorm upgrades them.
        version = local_metadata.get("version")
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats and key not in state_dict:
            state_dict[key] = torch.tensor(0, dtype=torch.long)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
