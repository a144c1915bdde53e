"""bnlab: a PyTorch laboratory for batch normalization.

Three parts, each importable on its own:

* :mod:`bnlab.layers`: BatchNorm and the variants the literature uses to test why it works.
* :mod:`bnlab.probes`: instruments that measure a model without changing it.
* :mod:`bnlab.experiments`: the papers' experiments as recipes, run by ``bnlab reproduce``.

``import bnlab`` stays light: it imports neither torch nor any subpackage.
"""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``bnlab.inspect`` without importing it first (PEP 562; torch loads only then)."""
    if name == "inspect":
        import importlib

        return importlib.import_module("bnlab.inspect")
    raise AttributeError(f"module 'bnlab' has no attribute {name!r}")
