"""Every docstring example in ramie.core runs and prints what it shows."""

import doctest
import importlib
import pkgutil

import pytest

import ramie.core

MODULES = sorted(
    name for _, name, _ in pkgutil.iter_modules(ramie.core.__path__, prefix="ramie.core.")
)


def test_modules_were_found():
    assert "ramie.core._graph" in MODULES and len(MODULES) >= 10


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
