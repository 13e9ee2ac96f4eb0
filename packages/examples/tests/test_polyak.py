"""polyak is mnist plus the EMA lines, and the EMA leaves training itself unchanged."""

from __future__ import annotations

import difflib
import inspect

import pytest
from example_runs import epoch_log, run

from ramie.examples import mnist, polyak

# The one added line that does not say "ema": main returns both accuracies.
NEUTRAL = {"def main(argv=None) -> tuple[float, float]:"}


@pytest.mark.parametrize("function", ["main", "train_step"])
def test_polyak_is_mnist_plus_the_ema_lines(function):
    before = inspect.getsource(getattr(mnist, function)).splitlines()
    after = inspect.getsource(getattr(polyak, function)).splitlines()
    diff = list(difflib.unified_diff(before, after, lineterm="", n=0))[2:]
    added = [line[1:] for line in diff if line.startswith("+")]
    removed = [line[1:] for line in diff if line.startswith("-")]
    assert added, f"{function} is the same in both"
    assert [line for line in added if "ema" not in line.lower() and line not in NEUTRAL] == []
    assert len(removed) <= 6 and len(added) <= 12, diff  # a diff-sized change


def test_the_ema_changes_nothing_in_training(capsys):
    flags = ["--epochs", "2"]
    _, plain = run(capsys, "mnist", flags)
    (accuracy, ema_accuracy), averaged = run(capsys, "polyak", flags)
    rows = epoch_log(averaged)
    assert [{k: v for k, v in row.items() if not k.startswith("ema_")} for row in rows] == (
        epoch_log(plain)
    )
    assert rows[-1]["ema_test_accuracy"] == pytest.approx(ema_accuracy, abs=5e-5)
    assert rows[-1]["ema_test_loss"] != rows[-1]["test_loss"]  # the average is a different model
    assert accuracy == pytest.approx(rows[-1]["test_accuracy"], abs=5e-5)
