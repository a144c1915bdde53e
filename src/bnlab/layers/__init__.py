"""Normalization layers with the ``torch.nn.BatchNorm`` contract, built by name.

Names (see :func:`list_norms`): ``bn`` (fast, on ``F.batch_norm``), ``bn_reference``
(Ioffe & Szegedy's Algorithms 1-2 and §3 backward), ``noisy_bn`` and ``noise`` (Santurkar
et al. 2018 §2.1), ``l1`` / ``l2`` / ``linf`` (Santurkar et al. §3.3; ``centered=True`` for
implementation I2), ``ghost_bn``, ``batch_renorm``, ``ln``, ``gn`` and ``none``. The maths
lives in :mod:`bnlab.layers.functional`; the modules share :class:`NormBase`.

Example:
    >>> import torch
    >>> from bnlab.layers import create_norm
    >>> norm = create_norm("l1", 16, centered=True)
    >>> norm(torch.randn(8, 16, 4, 4)).shape
    torch.Size([8, 16, 4, 4])
"""

# Importing the norm modules registers their names (see registry.register_norm).
from bnlab.layers import batchnorm, groupnorm, identity, lp, noise  # noqa: F401
from bnlab.layers.base import NormBase
from bnlab.layers.batchnorm import BatchNorm, BatchNormReference, BatchRenorm, GhostBatchNorm
from bnlab.layers.groupnorm import GroupNorm, LayerNorm
from bnlab.layers.identity import NoNorm
from bnlab.layers.lp import L1Norm, L2Norm, LInfNorm, LpNorm
from bnlab.layers.noise import Noise, NoiseSource, NoisyBatchNorm
from bnlab.layers.registry import create_norm, list_norms, register_norm
from bnlab.layers.sites import NormSite, is_norm_module, norm_sites, resolve_module
from bnlab.layers.swap import swap_norms

__all__ = [
    "BatchNorm",
    "BatchNormReference",
    "BatchRenorm",
    "GhostBatchNorm",
    "GroupNorm",
    "L1Norm",
    "L2Norm",
    "LInfNorm",
    "LayerNorm",
    "LpNorm",
    "NoNorm",
    "Noise",
    "NoiseSource",
    "NoisyBatchNorm",
    "NormBase",
    "NormSite",
    "create_norm",
    "is_norm_module",
    "list_norms",
    "norm_sites",
    "register_norm",
    "resolve_module",
    "swap_norms",
]
