"""Norm sites: the numbered places in a network where a normalization sits.

The papers name layers by number ("layer #5", "layer 55"). A *norm site* is one such
place: the norm module (an ``Identity``-like module when the network has no norm, so
numbering never depends on the norm chosen) and the conv/linear layer that feeds it.

bnlab models declare their sites explicitly in ``model.norm_site_names``, a tuple of
``(norm_module_name, feeding_layer_name)`` in depth order. For any other model the sites
are found by scanning ``named_modules()`` for normalization modules, and ``layer`` is only
a guess: the last conv/linear registered before the norm. Registration order is not call
order (a pre-activation block registers its projection shortcut last; two ``ModuleList`` of
convs and norms), so the probes find the feeding layer from a traced forward pass
instead (``bnlab.probes._trace``).

Names of a ``torch.compile``'d model carry an ``_orig_mod.`` prefix; :func:`resolve_module`
accepts a name with or without it.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from torch import nn

__all__ = ["NormSite", "is_norm_module", "norm_sites", "resolve_module", "strip_compiled_prefix"]

_TORCH_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
_WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)


@dataclass(frozen=True)
class NormSite:
    """One numbered normalization site.

    Attributes:
        index: 1-based position in depth order, as the papers count layers.
        name: the qualified name of the norm module in ``model.named_modules()``.
        norm: the norm module (an identity module for the ``none`` norm).
        layer: the conv/linear layer feeding the norm as declared by the model, else the
            last one registered before the norm (a guess, see the module docstring), or
            ``None`` if there is none.
    """

    index: int
    name: str
    norm: nn.Module
    layer: nn.Module | None


def is_norm_module(module: nn.Module) -> bool:
    """True for bnlab norms (they carry ``absorbs_bias``) and torch's BN/GN/LN modules."""
    return hasattr(module, "absorbs_bias") or isinstance(module, _TORCH_NORMS)


def norm_sites(model: nn.Module) -> list[NormSite]:
    """List the norm sites of ``model`` in depth order (see the module docstring)."""
    modules = dict(model.named_modules())
    declared = getattr(model, "norm_site_names", None)
    if declared is not None:
        return [
            NormSite(
                i, norm_name, modules[norm_name], modules.get(layer_name) if layer_name else None
            )
            for i, (norm_name, layer_name) in enumerate(declared, start=1)
        ]
    sites: list[NormSite] = []
    last_layer: nn.Module | None = None
    for name, module in modules.items():
        if isinstance(module, _WEIGHTED):
            last_layer = module
        elif name and is_norm_module(module):
            sites.append(NormSite(len(sites) + 1, name, module, last_layer))
    return sites


def resolve_module(model: nn.Module, item: str | int) -> tuple[str, nn.Module]:
    """Find a module by qualified name (``str``) or by 1-based norm-site index (``int``).

    Returns:
        ``(key, module)`` with ``key == str(item)``: results are keyed the way the user
        asked. An ``int`` resolves to the site's norm module.

    Raises:
        ValueError: naming the valid names or the valid index range.
    """
    if isinstance(item, bool) or not isinstance(item, (int, str)):
        raise ValueError(f"a layer is a module name (str) or a norm-site index (int), got {item!r}")
    if isinstance(item, int):
        sites = norm_sites(model)
        if not 1 <= item <= len(sites):
            raise ValueError(
                f"norm-site index {item} is out of range; this model has sites 1..{len(sites)}"
            )
        return str(item), sites[item - 1].norm
    modules = dict(model.named_modules())
    item_name = strip_compiled_prefix(item, modules)
    if item_name not in modules:
        names = [n for n in modules if n][:20]
        raise ValueError(f"no module named {item!r}; some valid names: {', '.join(names)}")
    return item, modules[item_name]


_COMPILED_PREFIX = "_orig_mod."  # torch.compile's wrapper keeps the model as ``_orig_mod``


def strip_compiled_prefix(name: str, names: Container[str]) -> str:
    """``name`` without torch.compile's ``_orig_mod.`` prefix(es), unless it is in ``names``.

    A model measured through its compiled wrapper's original module lists its names
    without the prefix; users copy them from the wrapper, with it.
    """
    while name not in names and name.startswith(_COMPILED_PREFIX):
        name = name[len(_COMPILED_PREFIX):]
    return name
