"""Retention: NaN and infinite metrics never rank as best; ties keep the newest."""

import math
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ramie import serialization as ser


def _save_all(tmp_path, metrics, **kwargs):
    manager = ser.CheckpointManager(tmp_path, **kwargs)
    for step, value in enumerate(metrics):
        manager.save(step, {"x": np.zeros(1)}, metadata={"m": value})
    return manager.all_steps()


@pytest.mark.parametrize(
    ("mode", "metrics", "kept"),
    [
        ("min", [0.5, math.nan, 0.1, 0.3, 0.4], [2, 3, 4]),  # the losses
        ("max", [0.5, math.nan, 0.9, 0.7, 0.6], [2, 3, 4]),
        ("min", [0.3, -math.inf, 0.2, 0.5, 0.6], [0, 2, 4]),  # -inf is no best loss
        ("max", [0.3, math.inf, 0.2, 0.5, 0.1], [0, 3, 4]),
        ("min", [math.nan, math.nan, math.nan, math.nan], [2, 3]),  # newest first then
        ("min", [0.5, 0.5, 0.5, 0.9], [1, 2, 3]),  # ties keep the newest
    ],
)
def test_non_finite_metrics_never_rank_as_best(tmp_path, mode, metrics, kept):
    assert _save_all(tmp_path, metrics, max_to_keep=2, keep_best="m", best_mode=mode) == kept


def test_a_metric_that_is_not_a_number_is_refused(tmp_path):
    manager = ser.CheckpointManager(tmp_path, max_to_keep=2, keep_best="m")
    with pytest.raises(ser.CheckpointError) as info:
        manager.save(0, {"x": np.zeros(1)}, metadata={"m": "high"})
    assert str(info.value) == (
        "keep_best='m' needs a number for step 0; got 'high'. Pass a real number (NaN and "
        "infinities are accepted but never rank as best)."
    )
    assert manager.all_steps() == []


def _best(metrics, mode):
    """The step a user calls best: finite, highest (or lowest), the newest among ties."""
    sign = 1 if mode == "max" else -1
    finite = [(sign * m, step) for step, m in enumerate(metrics) if math.isfinite(m)]
    return max(finite)[1] if finite else None


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    metrics=st.lists(
        st.one_of(
            st.sampled_from([math.nan, math.inf, -math.inf, 0.5, 1.0]),
            st.floats(-2, 2, allow_nan=False),
        ),
        min_size=1,
        max_size=9,
    ),
    keep=st.integers(1, 3),
    mode=st.sampled_from(["min", "max"]),
)
def test_the_best_step_survives_any_sequence_of_saves(tmp_path_factory, metrics, keep, mode):
    directory = tmp_path_factory.mktemp("best")
    manager = ser.CheckpointManager(directory, max_to_keep=keep, keep_best="m", best_mode=mode)
    for step, value in enumerate(metrics):
        manager.save(step, {"x": np.zeros(1)}, metadata={"m": value})
        steps = manager.all_steps()
        best = _best(metrics[: step + 1], mode)
        assert best is None or best in steps
        assert steps[-1] == step and len(steps) <= keep + 1


def test_retention_tolerates_steps_removed_by_someone_else(tmp_path, monkeypatch):
    manager = ser.CheckpointManager(tmp_path, max_to_keep=2)
    for step in range(3):
        manager.save(step, {"x": np.zeros(1)})
    other = ser.CheckpointManager(tmp_path, max_to_keep=2)
    listed = other.all_steps

    def listing_then_gone():
        steps = listed()
        shutil.rmtree(tmp_path / f"step_{steps[0]}")  # another writer (or a user) removes it
        return steps

    monkeypatch.setattr(other, "all_steps", listing_then_gone)
    manager.save(3, {"x": np.zeros(1)})  # commits; leaves 2, 3 (step 1 pruned)
    other.save(4, {"x": np.zeros(1)})  # its listing holds step 2, gone before it prunes
    monkeypatch.undo()
    assert other.all_steps() == [3, 4]
