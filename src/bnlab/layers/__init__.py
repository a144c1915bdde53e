"""Normalization layers with the ``torch.nn.BatchNorm`` contract, built by name.

See :func:`create_norm` and :func:`list_norms`.
"""

from bnlab.layers.registry import create_norm, list_norms, register_norm
from bnlab.layers.sites import NormSite, is_norm_module, norm_sites, resolve_module

__all__ = [
    "NormSite",
    "create_norm",
    "is_norm_module",
    "list_norms",
    "norm_sites",
    "register_norm",
    "resolve_module",
]
