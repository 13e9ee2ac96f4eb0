"""Every docstring example in ramie.serialization runs and prints what it shows."""

import doctest
import importlib
import pkgutil

import pytest

import ramie.serialization

MODULES = sorted(
    name
    for _, name, _ in pkgutil.iter_modules(
        ramie.serialization.__path__, prefix="ramie.serialization."
    )
)


def test_modules_were_found():
    assert "ramie.serialization._msgpack" in MODULES and len(MODULES) >= 8


@pytest.mark.parametrize("name", ["ramie.serialization", *MODULES])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
