"""Metrics of ramie.training: numbers against numpy, jit safety, reset, error messages."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ramie import core
from ramie.training import _metrics, metrics

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)
# XLA on CPU flushes subnormal floats to zero (2e-44 > 0 is False there), numpy does not.
FLOATS = st.floats(-1e3, 1e3, width=32, allow_nan=False, allow_subnormal=False)
BATCHES = st.lists(
    hnp.arrays(np.float32, st.integers(0, 12), elements=FLOATS), min_size=1, max_size=6
)


def _nonempty(batches):
    return sum(b.size for b in batches) > 0


def _feed(metric, name, batches):
    for batch in batches:
        metric.update(**{name: batch})
    return metric


def _shapes(state):
    return jax.tree.map(lambda x: (x.shape, x.dtype), core.to_pure_dict(state))


# -- Average -------------------------------------------------------------------


@SETTINGS
@given(BATCHES.filter(_nonempty))
def test_average_is_the_mean_of_all_elements(batches):
    everything = np.concatenate(batches)
    several = _feed(metrics.Average(), "values", batches)
    once = _feed(metrics.Average(), "values", [everything])
    scale = max(1.0, float(np.abs(everything).max()))
    np.testing.assert_allclose(
        several.compute(), np.mean(everything, dtype=np.float64), atol=1e-5 * scale
    )
    np.testing.assert_allclose(several.compute(), once.compute(), atol=1e-5 * scale)
    assert int(several.count.value) == everything.size


def test_average_counts_each_element_of_any_shape_once():
    avg = metrics.Average("loss")
    avg.update(loss=jnp.arange(6.0).reshape(2, 3))  # 0..5: total 15
    avg.update(loss=9.0)
    avg.update(loss=core.Param(jnp.array([[6.0]])))  # a Variable is read through .value
    assert float(avg.total.value) == 30.0 and int(avg.count.value) == 8
    assert float(avg.compute()) == 3.75
    assert avg.total.value.dtype == jnp.float32 and avg.count.value.dtype == jnp.int32


def test_average_is_nan_before_any_update_and_after_reset():
    avg = metrics.Average()
    assert np.isnan(avg.compute())
    avg.update(values=jnp.array([2.0, 4.0]))
    assert float(avg.compute()) == 3.0
    avg.reset()
    assert np.isnan(avg.compute()) and int(avg.count.value) == 0


def test_unknown_keyword_arguments_are_an_error_and_change_nothing():
    avg = metrics.Average("loss")
    with pytest.raises(metrics.MetricError) as info:
        avg.update(loss=1.0, logits=jnp.ones((2, 3)), step=7)
    assert str(info.value) == _metrics.UNKNOWN_KEYWORDS.format(
        metric="Average", unknown=["logits", "step"], known=["loss", "mask"]
    )
    assert int(avg.count.value) == 0
    with pytest.raises(metrics.MetricError, match=r"argument\(s\) \['maks'\]"):
        metrics.Accuracy().update(logits=jnp.ones((2, 3)), labels=jnp.zeros(2, int), maks=1)


# -- Welford -------------------------------------------------------------------


@SETTINGS
@given(BATCHES.filter(_nonempty))
def test_welford_matches_numpy(batches):
    everything = np.concatenate(batches).astype(np.float64)
    several = _feed(metrics.Welford(), "values", batches).compute()
    once = _feed(metrics.Welford(), "values", [everything]).compute()
    scale = max(1.0, float(np.abs(everything).max()))
    var = np.var(everything)
    expected = [np.mean(everything), var, np.sqrt(var), np.sqrt(var / everything.size)]
    tolerances = [1e-5 * scale, 1e-5 * scale**2, 2e-3 * scale, 2e-3 * scale]
    assert isinstance(several, metrics.Statistics)
    for got, same, want, atol in zip(several, once, expected, tolerances, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=atol)
        np.testing.assert_allclose(got, same, rtol=1e-4, atol=atol)


def test_welford_stays_accurate_far_from_zero():
    # Values near 1e4 with variance 8.25: E[x^2] - E[x]^2 in float32 loses every digit.
    values = 1e4 + np.arange(10.0)
    w = _feed(metrics.Welford(), "values", np.split(values.astype(np.float32), [3, 4, 9]))
    stats = w.compute()
    np.testing.assert_allclose(stats.mean, 10004.5, rtol=1e-6)
    np.testing.assert_allclose(stats.var, 8.25, rtol=1e-4)
    np.testing.assert_allclose(stats.std, np.sqrt(8.25), rtol=1e-4)
    np.testing.assert_allclose(stats.sem, np.sqrt(8.25 / 10), rtol=1e-4)


def test_welford_empty_batches_change_nothing():
    w = metrics.Welford()
    w.update(values=jnp.zeros((0,)))
    assert int(w.count.value) == 0 and float(w.mean.value) == 0.0 and float(w.m2.value) == 0.0
    assert all(np.isnan(x) for x in w.compute())  # nothing seen yet
    w.update(values=jnp.array([1.0, 3.0]))
    w.update(values=jnp.zeros((0, 4)))
    assert [float(x) for x in w.compute()] == [2.0, 1.0, 1.0, np.sqrt(0.5).astype(np.float32)]
    w.reset()
    assert all(np.isnan(x) for x in w.compute())
    assert w.count.value.dtype == jnp.int32 and w.m2.value.dtype == jnp.float32


# -- Accuracy ------------------------------------------------------------------


@st.composite
def multiclass_batches(draw):
    classes = draw(st.integers(2, 5))
    batches = []
    for _ in range(draw(st.integers(1, 5))):
        n = draw(st.integers(0, 8))
        logits = draw(hnp.arrays(np.float32, (n, classes), elements=FLOATS))
        labels = draw(hnp.arrays(np.int32, (n,), elements=st.integers(0, classes - 1)))
        batches.append((logits, labels))
    return batches


@st.composite
def binary_batches(draw):
    label_dtype = draw(st.sampled_from([np.bool_, np.int32, np.float32]))
    threshold = draw(st.sampled_from([0.0, 0.5, -2.0, 100.0]))
    batches = []
    for _ in range(draw(st.integers(1, 5))):
        n = draw(st.integers(0, 8))
        logits = draw(hnp.arrays(np.float32, (n,), elements=FLOATS))
        labels = draw(hnp.arrays(np.bool_, (n,))).astype(label_dtype)
        batches.append((logits, labels))
    return threshold, batches


def _accuracy(batches, threshold=None):
    acc = metrics.Accuracy(threshold)
    for logits, labels in batches:
        acc.update(logits=logits, labels=labels)
    return float(acc.compute())


def _total(batches):
    return sum(labels.size for _, labels in batches)


@SETTINGS
@given(multiclass_batches().filter(lambda b: _total(b) > 0))
def test_multiclass_accuracy_matches_numpy(batches):
    logits = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    expected = np.mean(np.argmax(logits, -1) == labels)
    assert _accuracy(batches) == pytest.approx(expected, abs=1e-6)
    assert _accuracy([(logits, labels)]) == pytest.approx(expected, abs=1e-6)


@SETTINGS
@given(binary_batches().filter(lambda tb: _total(tb[1]) > 0))
def test_binary_accuracy_matches_numpy(threshold_and_batches):
    threshold, batches = threshold_and_batches
    logits = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    expected = np.mean((logits > threshold) == (labels > 0.5))
    assert _accuracy(batches, threshold) == pytest.approx(expected, abs=1e-6)
    assert _accuracy([(logits, labels)], threshold) == pytest.approx(expected, abs=1e-6)


def test_binary_accuracy_with_probabilities_and_extra_dimensions():
    probs = jnp.array([[0.9, 0.2], [0.6, 0.4]])
    labels = jnp.array([[1.0, 0.0], [0.0, 0.0]])  # predicted [[1, 0], [1, 0]]: 3 of 4 right
    assert _accuracy([(probs, labels)], threshold=0.5) == 0.75
    soft = jnp.array([0.3, 0.7, 0.5])  # numeric labels are read as labels > 0.5
    assert _accuracy([(jnp.array([0.2, 0.9, 0.6]), soft)], threshold=0.5) == pytest.approx(2 / 3)
    # Multiclass with a leading batch and time axis: (2, 3, 4) logits, (2, 3) labels.
    logits = jax.nn.one_hot(jnp.array([[0, 1, 2], [3, 3, 3]]), 4)
    labels = jnp.array([[0, 1, 0], [3, 0, 3]])
    assert _accuracy([(logits, labels)]) == pytest.approx(4 / 6)


# -- MultiMetric ---------------------------------------------------------------


def _multi():
    return metrics.MultiMetric(
        loss=metrics.Average("loss"), accuracy=metrics.Accuracy(), spread=metrics.Welford("loss")
    )


LOGITS = jnp.array([[[2.0, 0.0, 1.0], [0.0, 3.0, 1.0]], [[0.0, 0.0, 5.0], [1.0, 0.0, 0.0]]])
LABELS = jnp.array([[0, 2], [2, 1]])
LOSSES = jnp.array([[1.0, 2.0], [4.0, 9.0]])


def test_multimetric_computes_each_metric():
    multi = _multi()
    for i in range(2):
        multi.update(loss=LOSSES[i], logits=LOGITS[i], labels=LABELS[i])
    result = multi.compute()
    assert list(result) == ["loss", "accuracy", "spread"]
    assert float(result["loss"]) == 4.0
    assert float(result["accuracy"]) == 0.5
    assert isinstance(result["spread"], metrics.Statistics)
    np.testing.assert_allclose(result["spread"].var, np.var([1.0, 2.0, 4.0, 9.0]), rtol=1e-6)
    assert multi.loss.compute() == result["loss"]
    multi.reset()
    assert all(int(m.count.value) == 0 for m in (multi.loss, multi.accuracy, multi.spread))


def test_metric_state_is_its_own_kind():
    multi = _multi()
    graphdef, state = core.split(multi, metrics.MetricState)  # exhaustive: all state is metrics
    assert sorted(state.flat_state()) == [
        ("accuracy", "count"),
        ("accuracy", "total"),
        ("loss", "count"),
        ("loss", "total"),
        ("spread", "count"),
        ("spread", "m2"),
        ("spread", "mean"),
    ]
    assert all(type(v) is metrics.MetricState for v in state.flat_state().values())
    assert core.state(multi, core.Param).flat_state() == {}
    assert not issubclass(metrics.MetricState, core.Param)


# -- jit -----------------------------------------------------------------------


def _jitted_steps(metric):
    graphdef, state = core.split(metric)
    traces = []

    @jax.jit
    def step(state, batch):
        traces.append(1)
        m = core.merge(graphdef, state)
        m.update(**batch)
        return core.state(m)

    @jax.jit
    def reset_then_step(state, batch):
        m = core.merge(graphdef, state)
        m.reset()
        m.update(**batch)
        return core.state(m)

    return graphdef, state, step, reset_then_step, traces


def _assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6)


@pytest.mark.parametrize(
    "make, batches",
    [
        (lambda: metrics.Average("loss"), [{"loss": LOSSES[i]} for i in range(2)]),
        (lambda: metrics.Welford("loss"), [{"loss": LOSSES[i]} for i in range(2)]),
        (metrics.Accuracy, [{"logits": LOGITS[i], "labels": LABELS[i]} for i in range(2)]),
        (_multi, [{"loss": LOSSES[i], "logits": LOGITS[i], "labels": LABELS[i]} for i in range(2)]),
    ],
    ids=["average", "welford", "accuracy", "multimetric"],
)
def test_jitted_updates_match_eager_updates_and_reset_keeps_shapes(make, batches):
    eager = make()
    graphdef, state, step, reset_then_step, traces = _jitted_steps(make())
    initial_shapes = _shapes(state)
    for batch in batches * 2:
        eager.update(**batch)
        state = step(state, batch)
    assert len(traces) == 1  # same shapes and dtypes every call: traced once
    _assert_same(core.merge(graphdef, state).compute(), eager.compute())

    # reset() inside the jitted function: back to one batch's worth.
    fresh = make()
    fresh.update(**batches[0])
    state = reset_then_step(state, batches[0])
    assert _shapes(state) == initial_shapes
    _assert_same(core.merge(graphdef, state).compute(), fresh.compute())

    # reset() outside: the state keeps its shapes, so the jitted step is not retraced.
    outside = core.merge(graphdef, state)
    outside.reset()
    state = core.state(outside)
    assert _shapes(state) == initial_shapes
    state = step(state, batches[0])
    assert len(traces) == 1
    _assert_same(core.merge(graphdef, state).compute(), fresh.compute())


def test_welford_empty_batch_under_jit_is_not_nan():
    graphdef, state, step, _, _ = _jitted_steps(metrics.Welford())
    state = step(state, {"values": jnp.array([1.0, 2.0])})
    state = step(state, {"values": jnp.zeros((0,))})
    stats = core.merge(graphdef, state).compute()
    assert [float(x) for x in stats[:3]] == [1.5, 0.25, 0.5]


# -- errors --------------------------------------------------------------------


@pytest.mark.parametrize("cls", [metrics.Average, metrics.Welford])
def test_missing_argument_names_the_metric_and_the_fix(cls):
    with pytest.raises(metrics.MetricError) as info:
        cls().update(loss=1.0, step=3)
    name = cls.__name__
    assert str(info.value) == _metrics.MISSING_VALUES.format(
        metric=name, argname="values", got="keyword arguments ['loss', 'step']", suggest="loss"
    )
    assert f"{name}.update() needs the keyword argument 'values'" in str(info.value)
    assert f"{name}(argname='loss')" in str(info.value)
    assert isinstance(info.value, core.RamieError) and isinstance(info.value, TypeError)
    with pytest.raises(metrics.MetricError, match="but it got no keyword arguments"):
        cls("loss").update()
    with pytest.raises(metrics.MetricError, match=rf"e.g. {name}\(argname='batch_loss'\)"):
        cls().update(batch_loss=1.0)  # the one name given is the suggestion


def test_accuracy_missing_arguments():
    with pytest.raises(metrics.MetricError) as info:
        metrics.Accuracy().update(logits=jnp.ones((2, 3)), loss=1.0)
    assert str(info.value) == _metrics.MISSING_ACCURACY_INPUTS.format(
        got="keyword arguments ['logits', 'loss']"
    )


def test_binary_accuracy_without_threshold_says_what_to_pass():
    with pytest.raises(metrics.MetricError) as info:
        metrics.Accuracy().update(logits=jnp.ones((4,)), labels=jnp.ones((4,)))
    assert str(info.value) == _metrics.BINARY_NEEDS_THRESHOLD.format(shape=(4,))
    assert "Accuracy(threshold=0.0)" in str(info.value)
    assert "Accuracy(threshold=0.5)" in str(info.value)


@pytest.mark.parametrize(
    "logits, labels",
    [((4, 3), (5,)), ((4,), (4, 1)), ((4, 3, 2), (4,)), ((2, 3), (3,))],
)
def test_accuracy_bad_shapes_name_both(logits, labels):
    with pytest.raises(metrics.MetricError) as info:
        metrics.Accuracy(threshold=0.0).update(logits=jnp.ones(logits), labels=jnp.ones(labels))
    assert str(info.value) == _metrics.BAD_ACCURACY_SHAPES.format(logits=logits, labels=labels)
    assert f"logits of shape {logits} and labels of shape {labels}" in str(info.value)


@pytest.mark.parametrize("name", ["update", "compute", "reset", "_names", "train"])
def test_multimetric_rejects_names_that_clash(name):
    with pytest.raises(metrics.MetricError) as info:
        metrics.MultiMetric(**{name: metrics.Average()})
    assert str(info.value) == _metrics.MULTI_METRIC_NAME_CLASH.format(name=name)


def test_multimetric_rejects_non_metrics():
    with pytest.raises(metrics.MetricError) as info:
        metrics.MultiMetric(loss=jnp.zeros(()))
    assert str(info.value) == _metrics.MULTI_METRIC_NOT_A_METRIC.format(
        name="loss", found="ArrayImpl"
    )


def test_multimetric_error_names_the_entry():
    multi = metrics.MultiMetric(accuracy=metrics.Accuracy(), loss=metrics.Average())
    with pytest.raises(metrics.MetricError) as info:
        multi.update(values=1.0, logits=jnp.ones((2, 3)))
    inner = _metrics.MISSING_ACCURACY_INPUTS.format(got="keyword arguments ['logits']")
    assert str(info.value) == _metrics.MULTI_METRIC_ENTRY.format(name="accuracy", message=inner)
    assert isinstance(info.value.__cause__, metrics.MetricError)
    with pytest.raises(metrics.MetricError, match=r"argument\(s\) \['loss'\], which none"):
        multi.update(loss=1.0, logits=jnp.ones((2, 3)), labels=jnp.zeros((2,), jnp.int32))


def test_base_metric_must_be_subclassed():
    with pytest.raises(NotImplementedError, match="Metric does not implement update"):
        metrics.Metric().update(values=1.0)
    with pytest.raises(NotImplementedError, match="Metric does not implement compute"):
        metrics.Metric().compute()
