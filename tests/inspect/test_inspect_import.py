"""``bnlab.inspect`` is callable and reachable from ``import bnlab`` without importing torch
before it is used."""

from __future__ import annotations

import subprocess
import sys


def test_bnlab_inspect_is_the_function_and_loads_lazily():
    code = ("import sys, bnlab; light = 'torch' not in sys.modules; f = bnlab.inspect; "
            "import bnlab.inspect.run as r; "
            "print(light, callable(f), f.__name__, r.inspect.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "bnlab.inspect", "bnlab.inspect.run"]


def test_the_stdlib_inspect_module_is_not_shadowed():
    import inspect

    import bnlab.inspect

    assert inspect.signature is not None and inspect.__name__ == "inspect"
    assert bnlab.inspect.__name__ == "bnlab.inspect"
