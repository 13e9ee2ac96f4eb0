"""The API reference generator and its completeness check, on a small made-up package."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_ext"))

import ramie_api  # noqa: E402

SOURCE = '''
"""A package for the test."""

from ._impl import CONSTANT, UNDOCUMENTED, Documented, Bare, documented, bare, Loose
alias = documented

__all__ = [
    "CONSTANT", "UNDOCUMENTED", "Documented", "Bare", "documented", "bare", "alias", "Loose",
]
'''

IMPL = '''
from typing import Any

#: A documented constant.
CONSTANT = 3
UNDOCUMENTED = 4


class Documented:
    """A class with a docstring."""


class Bare(Documented):
    pass


def documented():
    """A function with a docstring."""


def bare():
    pass


Loose = Any  # a type alias: typing.Any's docstring must not count as ours
'''


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    root = tmp_path / "fakepkg"
    root.mkdir()
    (root / "__init__.py").write_text(textwrap.dedent(SOURCE))
    (root / "_impl.py").write_text(textwrap.dedent(IMPL))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fakepkg"
    for name in [m for m in sys.modules if m.startswith("fakepkg")]:
        del sys.modules[name]


def test_collect_classifies_every_public_name(fake_package):
    entries = ramie_api.collect([fake_package])[fake_package]
    kinds = {e.name: (e.kind, e.target, e.doc) for e in entries}
    assert kinds == {
        "CONSTANT": ("data", "", "A documented constant."),
        "UNDOCUMENTED": ("data", "", ""),
        "Documented": ("class", "", ""),
        "Bare": ("class", "", ""),
        "documented": ("function", "", ""),
        "bare": ("function", "", ""),
        "alias": ("alias", "fakepkg.documented", ""),
        "Loose": ("data", "", ""),
    }


def test_check_names_every_missing_entry_and_docstring(fake_package):
    pages = ramie_api.collect([fake_package])
    documented = {f"fakepkg.{n}" for n in ("CONSTANT", "UNDOCUMENTED", "Documented", "Bare")}
    found = ramie_api.problems(pages, documented, facade=False)
    assert found == [
        "fakepkg.UNDOCUMENTED: a constant without documentation; add a `#:` comment on the "
        "line above where it is defined",
        "fakepkg.Bare: no docstring; write one (with a short example)",
        "fakepkg.documented: in __all__ but missing from the API reference",
        "fakepkg.bare: in __all__ but missing from the API reference",
        "fakepkg.bare: no docstring; write one (with a short example)",
        "fakepkg.alias: alias of fakepkg.documented, which is not documented",
        "fakepkg.Loose: in __all__ but missing from the API reference",
        "fakepkg.Loose: a constant without documentation; add a `#:` comment on the line "
        "above where it is defined",
    ]


def test_check_passes_when_everything_is_documented(fake_package):
    pages = ramie_api.collect([fake_package])
    everything = {e.fullname for e in pages[fake_package]}
    found = ramie_api.problems(pages, everything, facade=False)
    # Only what no page can fix remains: the missing docstrings and the comment.
    assert [p.split(":")[0] for p in found] == [
        "fakepkg.UNDOCUMENTED",
        "fakepkg.Bare",
        "fakepkg.bare",
        "fakepkg.Loose",
    ]


def test_render_lists_every_name_with_the_right_directive(fake_package):
    pages = ramie_api.collect([fake_package])
    text = ramie_api.render(fake_package, pages[fake_package])
    assert ".. autoclass:: Documented" in text
    assert ".. autofunction:: documented" in text
    assert ".. py:data:: CONSTANT" in text and "   A documented constant." in text
    assert "The same object as :py:obj:`fakepkg.documented`." in text
    for entry in pages[fake_package]:
        assert f":py:obj:`~fakepkg.{entry.name}`" in text


def test_missing_all_is_an_error_naming_the_module(tmp_path, monkeypatch):
    (tmp_path / "noall.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError, match="^noall has no __all__: the API reference is built"):
        ramie_api.collect(["noall"])


def test_the_real_packages_need_nothing_more():
    """Every public name of every installed ramie package has a docstring or a #: comment."""
    pages = ramie_api.collect(ramie_api.module_order())
    everything = {e.fullname for entries in pages.values() for e in entries}
    assert ramie_api.problems(pages, everything) == []
