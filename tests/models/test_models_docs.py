"""The docstring examples of bnlab.models run and print what they claim."""

import doctest
import importlib

import pytest

MODULES = [
    "bnlab.models",
    "bnlab.models.registry",
    "bnlab.models.mlp",
    "bnlab.models.dln",
    "bnlab.models.vgg",
    "bnlab.models.resnet_cifar",
]


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_every_builder_has_an_example():
    # The registered builders are made by factories; their docstrings must still be
    # collected by doctest (found through the module's public names).
    module = importlib.import_module("bnlab.models.resnet_cifar")
    finder = doctest.DocTestFinder()
    names = {t.name.rsplit(".", 1)[-1] for t in finder.find(module) if t.examples}
    assert {"resnet20", "resnet56", "resnet110"} <= names
