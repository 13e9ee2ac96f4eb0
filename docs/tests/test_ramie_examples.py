"""The examples gallery generator."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_ext"))

import ramie_examples  # noqa: E402


def test_example_help_keeps_usage_and_options_only():
    text = "usage: prog [-h]\n           [--x X]\n\nA description.\n\nMore.\n\noptions:\n  -h  help"
    assert ramie_examples.usage_and_options(text) == (
        "usage: prog [-h]\n           [--x X]\n\noptions:\n  -h  help"
    )
    assert ramie_examples.usage_and_options("usage: prog") == "usage: prog"


def test_readme_rows_give_every_example_its_headline():
    from ramie.examples import EXAMPLES

    rows = ramie_examples.readme_rows(Path(__file__).resolve().parents[2] / "README.md")
    missing = sorted(set(EXAMPLES) - set(rows))
    assert not missing, f"add a row to the README's examples table for {missing}"
    assert sorted(rows) == sorted(EXAMPLES)
    assert rows["mnist"]["result"].startswith("`test accuracy:")
