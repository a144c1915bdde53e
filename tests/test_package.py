"""Package-level promises: ``import bnlab`` is light."""

import subprocess
import sys


def test_import_bnlab_does_not_import_torch():
    code = "import sys, bnlab; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_reporting_stack_imports_without_torch():
    code = (
        "import sys, bnlab.results, bnlab.claims, bnlab.report; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
