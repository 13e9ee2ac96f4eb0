"""Masks in every metric (issue 15): masked-out values never count, unknown keywords fail."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ramie import core
from ramie.training import _metrics, metrics

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)
FLOATS = st.floats(-1e3, 1e3, width=32, allow_nan=False, allow_subnormal=False)


def test_the_issue_snippet_average_and_multimetric_respect_mask():
    avg = metrics.Average()
    avg.update(values=jnp.array([1.0, 100.0]), mask=jnp.array([1, 0]))
    assert float(avg.compute()) == 1.0 and int(avg.count.value) == 1
    multi = metrics.MultiMetric(loss=metrics.Average("loss"), accuracy=metrics.Accuracy())
    multi.update(
        loss=jnp.array([1.0, 100.0]),
        logits=jnp.array([[0.0, 1.0], [1.0, 0.0]]),
        labels=jnp.array([1, 1]),
        mask=jnp.array([True, False]),
    )
    result = multi.compute()
    assert float(result["loss"]) == 1.0 and float(result["accuracy"]) == 1.0


@SETTINGS
@given(
    hnp.arrays(np.float32, st.integers(1, 20), elements=FLOATS),
    st.data(),
)
def test_masked_average_and_welford_equal_numpy_on_the_kept_elements(values, data):
    mask = data.draw(hnp.arrays(np.bool_, values.shape))
    avg, wel = metrics.Average(), metrics.Welford()
    for metric in (avg, wel):
        metric.update(values=values[:1])  # an unmasked first batch, then a masked one
        metric.update(values=values, mask=mask)
    kept = np.concatenate([values[:1], values[mask]]).astype(np.float64)
    scale = max(1.0, float(np.abs(values).max()))
    assert int(avg.count.value) == int(wel.count.value) == kept.size
    np.testing.assert_allclose(avg.compute(), kept.mean(), atol=1e-5 * scale)
    stats = wel.compute()
    np.testing.assert_allclose(stats.mean, kept.mean(), atol=1e-5 * scale)
    np.testing.assert_allclose(stats.var, kept.var(), atol=1e-4 * scale**2, rtol=1e-4)


def test_mask_broadcasts_and_all_false_changes_nothing():
    avg = metrics.Average()
    avg.update(values=jnp.array([[1.0, 2.0], [3.0, 4.0]]), mask=jnp.array([[True], [False]]))
    assert float(avg.compute()) == 1.5 and int(avg.count.value) == 2
    wel = metrics.Welford()
    wel.update(values=jnp.array([2.0, 4.0]))
    wel.update(values=jnp.array([50.0, 60.0]), mask=jnp.zeros(2, bool))
    assert [float(x) for x in wel.compute()[:3]] == [3.0, 1.0, 1.0]


def test_accuracy_mask_under_jit():
    acc = metrics.Accuracy()
    graphdef, state = acc.split()

    @jax.jit
    def step(state, logits, labels, mask):
        acc = core.merge(graphdef, state)
        acc.update(logits=logits, labels=labels, mask=mask)
        return core.state(acc)

    logits = jnp.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    state = step(state, logits, jnp.array([1, 1, 0]), jnp.array([True, False, True]))
    done = core.merge(graphdef, state)
    assert float(done.compute()) == 1.0 and int(done.count.value) == 2


def test_bad_mask_shape_names_both_shapes():
    with pytest.raises(metrics.MetricError) as info:
        metrics.Average().update(values=jnp.ones((2, 3)), mask=jnp.ones(2, bool))
    assert str(info.value) == _metrics.BAD_MASK.format(
        metric="Average", mask=(2,), shape=(2, 3), what="values"
    )


def test_multimetric_mask_per_metric_and_unknown_keywords():
    multi = metrics.MultiMetric(a=metrics.Average("x"), b=metrics.Average("x"))
    multi.update(x=jnp.array([1.0, 3.0]), mask={"a": jnp.array([True, False])})
    assert [float(v) for v in multi.compute().values()] == [1.0, 2.0]
    with pytest.raises(metrics.MetricError) as info:
        multi.update(x=jnp.ones(2), maks=jnp.ones(2, bool))
    assert str(info.value) == _metrics.MULTI_UNKNOWN_KEYWORDS.format(
        unknown=["maks"], names=["a", "b"], known=["mask", "x"]
    )
    with pytest.raises(metrics.MetricError) as info:
        multi.update(x=jnp.ones(2), mask={"c": jnp.ones(2, bool)})
    assert str(info.value) == _metrics.MULTI_MASK_NAMES.format(unknown=["c"], names=["a", "b"])


def test_split_is_core_split():
    multi = metrics.MultiMetric(loss=metrics.Average())
    graphdef, state = multi.split(metrics.MetricState)
    assert sorted(state.flat_state()) == [("loss", "count"), ("loss", "total")]
    assert graphdef == core.split(multi)[0]


def test_a_scalar_with_a_per_example_mask_counts_once_per_kept_example():
    avg = metrics.Average("loss")
    avg.update(loss=jnp.array(2.0), mask=jnp.array([True, True, False]))
    avg.update(loss=jnp.array(5.0), mask=jnp.array([True, False, False]))
    assert int(avg.count.value) == 3 and float(avg.compute()) == 3.0  # (2 + 2 + 5) / 3
