"""Running an example from a test: its printed lines, its epoch log, a simulated crash."""

from __future__ import annotations

import importlib
import re

import numpy as np

from ramie.serialization import CheckpointManager

_PAIR = re.compile(r"(\w+) +(-?[0-9.]+)(%?)")


def run(capsys, name: str, argv: list[str]):
    """``ramie.examples.<name>.main(argv)``: (its return value, the lines it printed)."""
    module = importlib.import_module(f"ramie.examples.{name}")
    capsys.readouterr()
    result = module.main(argv)
    return result, capsys.readouterr().out.splitlines()


def epoch_log(lines: list[str]) -> list[dict[str, float]]:
    """The per-epoch lines (``epoch 3  train_loss 0.1234  test_accuracy 97.50%``) as dicts."""
    rows = []
    for line in lines:
        if line.startswith("epoch "):
            row = {k: float(v) / (100 if pct else 1) for k, v, pct in _PAIR.findall(line)}
            rows.append(row)
    return rows


class Interrupted(Exception):
    """Raised by ``crashing_manager`` right after it commits the chosen step."""


def crashing_manager(after_step: int):
    """A CheckpointManager that stops the program once ``after_step`` is saved."""

    class Crashing(CheckpointManager):
        def save(self, step, state, **kwargs):
            super().save(step, state, **kwargs)
            if step == after_step:
                raise Interrupted(f"simulated crash after step {step}")

    return Crashing


def assert_same_checkpoints(left: str, right: str) -> None:
    """The latest checkpoints of two work dirs hold the same step and identical arrays."""
    a, b = CheckpointManager(left), CheckpointManager(right)
    assert a.latest_step() == b.latest_step()
    flat_a, flat_b = _flatten(a.restore()), _flatten(b.restore())
    assert flat_a.keys() == flat_b.keys()
    for key, value in flat_a.items():
        np.testing.assert_array_equal(value, flat_b[key], err_msg=str(key))


def _flatten(tree, prefix=()):
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out |= _flatten(value, (*prefix, key))
        return out
    return {prefix: np.asarray(tree)}
