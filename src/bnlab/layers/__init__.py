"""Normalization layers with the ``torch.nn.BatchNorm`` contract, built by name.

See :func:`create_norm` and :func:`list_norms`.
"""

# Importing the norm modules registers their names (see registry.register_norm).
from bnlab.layers import batchnorm, identity  # noqa: F401
from bnlab.layers.base import NormBase
from bnlab.layers.batchnorm import BatchNorm
from bnlab.layers.identity import NoNorm
from bnlab.layers.registry import create_norm, list_norms, register_norm
from bnlab.layers.sites import NormSite, is_norm_module, norm_sites, resolve_module

__all__ = [
    "BatchNorm",
    "NoNorm",
    "NormBase",
    "NormSite",
    "create_norm",
    "is_norm_module",
    "list_norms",
    "norm_sites",
    "register_norm",
    "resolve_module",
]
