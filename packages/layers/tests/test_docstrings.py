"""Every docstring example in ramie.layers runs and prints what it shows."""

import doctest
import importlib
import pkgutil

import pytest

import ramie.layers

MODULES = ["ramie.layers"] + sorted(
    name for _, name, _ in pkgutil.iter_modules(ramie.layers.__path__, prefix="ramie.layers.")
)


def test_modules_were_found():
    assert "ramie.layers._linear" in MODULES and len(MODULES) >= 10


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_every_public_class_and_function_has_an_example():
    for name in ramie.layers.__all__:
        obj = getattr(ramie.layers, name)
        is_error = isinstance(obj, type) and issubclass(obj, Exception)
        if getattr(obj, "__module__", "").startswith("ramie.layers") and not is_error:
            assert ">>>" in (obj.__doc__ or ""), f"{name} has no docstring example"
