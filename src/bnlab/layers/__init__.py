"""Normalization layers with the ``torch.nn.BatchNorm`` contract, built by name.

See :func:`create_norm` and :func:`list_norms`.
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
]
