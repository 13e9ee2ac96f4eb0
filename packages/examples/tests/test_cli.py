"""The ramie-examples console script: list, run, and the message for a missing extra."""

from __future__ import annotations

import importlib.metadata as metadata
import subprocess
import sys
from pathlib import Path

import pytest

from ramie.examples import EXAMPLES, _cli, describe


def test_list(capsys):
    assert _cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(EXAMPLES)
    assert lines[0] == f"mnist{' ' * 9}{describe('mnist')}"  # padded to "segmentation"
    assert describe("gnn").startswith("Node classification on Zachary's karate club")


def test_run_passes_the_flags_to_the_example(capsys):
    assert _cli.main(["run", "gnn", "--epochs", "1", "--steps-per-epoch", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("test accuracy (unlabelled members): ")
    assert [line for line in lines if line.startswith("epoch")] == [lines[0]]


def test_run_an_unknown_example(capsys):
    with pytest.raises(SystemExit) as exit:
        _cli.main(["run", "nosuch"])
    assert exit.value.code == 2
    assert "invalid choice: 'nosuch'" in capsys.readouterr().err


def test_missing_extra_says_what_to_install(capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "ramie.examples.gnn", raising=False)
    monkeypatch.setitem(sys.modules, "jraph", None)
    assert _cli.main(["run", "gnn"]) == 1
    message = capsys.readouterr().err.strip()
    assert message == _cli.MISSING_EXTRA.format(name="gnn", module="jraph", extra="gnn")
    assert message.endswith(
        "needs jraph, which is not installed; pip install 'ramie-examples[gnn]'"
    )


def test_console_script_is_installed():
    (script,) = [
        e for e in metadata.entry_points(group="console_scripts") if e.name == "ramie-examples"
    ]
    assert script.value == "ramie.examples._cli:main"
    path = Path(sys.executable).parent / "ramie-examples"
    listing = subprocess.run([path, "list"], capture_output=True, text=True, check=True)
    assert listing.stdout.split()[0] == "mnist"
    module = subprocess.run(
        [sys.executable, "-m", "ramie.examples", "list"], capture_output=True, text=True
    )
    assert module.returncode == 0 and module.stdout == listing.stdout
