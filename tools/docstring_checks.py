"""Shared test: every docstring example of a package's modules runs and prints what it shows.

A package's ``tests/test_docstrings.py`` calls ``define_tests(globals(), "ramie.x")``.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def define_tests(namespace: dict, package: str, *, minimum: int, without_examples=()) -> None:
    """Add ``test_modules_were_found`` and a parametrised ``test_docstring_examples``.

    ``minimum`` is how many modules the package has at least (so an import
    mistake cannot make the test vacuous); modules named in ``without_examples``
    may have no example, every other module must have one.
    """
    root = importlib.import_module(package)
    submodules = pkgutil.iter_modules(root.__path__, package + ".")
    modules = [package, *sorted(name for _, name, _ in submodules)]

    def test_modules_were_found():
        assert len(modules) >= minimum, modules

    @pytest.mark.parametrize("name", modules)
    def test_docstring_examples(name):
        result = doctest.testmod(importlib.import_module(name), optionflags=FLAGS)
        if name.rsplit(".", 1)[-1] not in without_examples:
            assert result.attempted > 0, f"no docstring example in {name}"
        assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"

    namespace["test_modules_were_found"] = test_modules_were_found
    namespace["test_docstring_examples"] = test_docstring_examples
