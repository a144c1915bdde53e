"""The instrument panel on your own model: ``bnlab.inspect(...)`` and ``bnlab inspect``.

``bnlab.inspect(model, loss_fn, loader, steps=..., compare="none", out=DIR)`` trains (or,
with ``steps=0``, only measures) a model with the panel's probes and stores one run per
variant in ``DIR/bnlab.db``; ``bnlab report --out DIR`` draws the panel beside the
reproductions. The panel, per norm site: activation statistics over time (percentiles
and histograms), Santurkar's ICS, the landscape band and β, gradient statistics, the
gradient-explosion rate at initialization, the depth profile and the top Hessian
eigenvalue at a few points, each probe's cost measured in training steps of the same
model. The package itself is callable: ``bnlab.inspect(...)`` is
:func:`bnlab.inspect.run.inspect`.

Example:
    >>> import bnlab.inspect
    >>> res = bnlab.inspect(net, F.cross_entropy, loader, steps=200, compare="none",
    ...                     out="runs/mynet")                        # doctest: +SKIP
    >>> print(res.summary())                                          # doctest: +SKIP
"""

from __future__ import annotations

import sys
import types
from typing import Any

from bnlab.inspect.panel import ALL, DEFAULT, PROBES, Panel, Sites, find_sites
from bnlab.inspect.run import InspectResult, VariantResult, check_fits, inspect

__all__ = ["ALL", "DEFAULT", "PROBES", "InspectResult", "Panel", "Sites", "VariantResult",
           "check_fits", "find_sites", "inspect"]


class _CallableModule(types.ModuleType):
    """This package, callable: ``bnlab.inspect(...)`` calls :func:`inspect`."""

    def __call__(self, *args: Any, **kwargs: Any) -> InspectResult:
        return inspect(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
