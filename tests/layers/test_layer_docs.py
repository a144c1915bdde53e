"""The docstring examples of bnlab.layers run as tests."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["bnlab.layers", "bnlab.layers.registry", "bnlab.layers.batchnorm"]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
