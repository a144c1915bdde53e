"""Models with pluggable normalization, built by name.

``create_model(name, norm=..., in_shape=..., num_classes=..., **options)`` builds any of
:func:`list_models` with any norm of :func:`bnlab.layers.list_norms`, placed before the
nonlinearity, with the feeding layer's bias dropped only when the norm has its own shift.
Every model numbers its norm sites the way the papers number layers; :func:`norm_sites`
lists them (the same indices for every norm, identity modules for ``norm="none"``).

Example:
    >>> from bnlab.models import create_model, norm_sites
    >>> net = create_model("resnet110", norm="bn", in_shape=(3, 32, 32), num_classes=10)
    >>> len(norm_sites(net))
    109
"""

from bnlab.layers import NormSite, norm_sites, resolve_module
from bnlab.models import dln, mlp, resnet_cifar, vgg  # noqa: F401 (registers the models)
from bnlab.models.registry import create_model, list_models, model_options, register_model

__all__ = [
    "NormSite",
    "create_model",
    "list_models",
    "model_options",
    "norm_sites",
    "register_model",
    "resolve_module",
]
