"""Filters: every filter form through split/state, hashing, errors, exhaustiveness."""

import gc
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie import core
from ramie.core import _errors


class Custom(core.Variable):
    pass


class Sub(core.Module):
    def __init__(self):
        self.kernel = core.Param(jnp.ones((2, 2)))
        self.mean = core.BatchStat(jnp.zeros(2))


class Model(core.Module):
    def __init__(self):
        self.sub = Sub()
        self.bias = core.Param(jnp.zeros(2))
        self.var = core.BatchStat(jnp.ones(2))
        self.steps = Custom(jnp.array(0))
        self.name = "model"  # static, not a leaf


KERNEL = ("sub", "kernel")
MEAN = ("sub", "mean")
BIAS = ("bias",)
VAR = ("var",)
STEPS = ("steps",)
ALL_PATHS = {KERNEL, MEAN, BIAS, VAR, STEPS}


def is_steps(path, value):
    return path[-1] == "steps"


FILTER_CASES = [
    pytest.param(core.Param, {KERNEL, BIAS}, id="type"),
    pytest.param(core.BatchStat, {MEAN, VAR}, id="type-batchstat"),
    pytest.param(Custom, {STEPS}, id="type-custom"),
    pytest.param(core.Variable, ALL_PATHS, id="type-base"),
    pytest.param((core.Param, Custom), {KERNEL, BIAS, STEPS}, id="tuple"),
    pytest.param([core.BatchStat, Custom], {MEAN, VAR, STEPS}, id="list"),
    pytest.param(core.All(core.Param, core.PathContains("sub")), {KERNEL}, id="All"),
    pytest.param(core.Any(core.BatchStat, Custom), {MEAN, VAR, STEPS}, id="Any"),
    pytest.param(core.Not(core.Param), {MEAN, VAR, STEPS}, id="Not"),
    pytest.param(core.Not((core.Param, core.BatchStat)), {STEPS}, id="Not-tuple"),
    pytest.param(core.PathContains("sub"), {KERNEL, MEAN}, id="PathContains"),
    pytest.param(core.PathContains("mean"), {MEAN}, id="PathContains-leaf"),
    pytest.param(core.Everything, ALL_PATHS, id="Everything"),
    pytest.param(..., ALL_PATHS, id="Ellipsis"),
    pytest.param(core.Nothing, set(), id="Nothing"),
    pytest.param(True, ALL_PATHS, id="True"),
    pytest.param(False, set(), id="False"),
    pytest.param(is_steps, {STEPS}, id="callable"),
    pytest.param(lambda path, v: v.value.ndim == 2, {KERNEL}, id="lambda"),
    pytest.param(
        core.Any(core.All(core.BatchStat, core.Not(core.PathContains("sub"))), Custom),
        {VAR, STEPS},
        id="nested",
    ),
]


@pytest.mark.parametrize(("filt", "expected"), FILTER_CASES)
def test_filter_through_state(filt, expected):
    m = Model()
    selected = core.state(m, filt)
    assert set(selected.paths()) == expected
    for leaf in selected.leaves():
        assert isinstance(leaf, core.Variable)


@pytest.mark.parametrize(("filt", "expected"), FILTER_CASES)
def test_filter_through_split(filt, expected):
    m = Model()
    graphdef, selected, rest = core.split(m, filt, ...)
    assert set(selected.paths()) == expected
    assert set(rest.paths()) == ALL_PATHS - expected
    rebuilt = core.merge(graphdef, selected, rest)
    assert type(rebuilt) is Model
    assert rebuilt.name == "model"
    np.testing.assert_array_equal(rebuilt.sub.kernel.value, m.sub.kernel.value)


def test_split_with_several_filters_first_match_wins():
    m = Model()
    _, params, everything_else, leftover = core.split(m, core.Param, core.Variable, ...)
    assert set(params.paths()) == {KERNEL, BIAS}
    assert set(everything_else.paths()) == {MEAN, VAR, STEPS}
    assert leftover.paths() == []


def test_state_with_several_filters_is_not_exhaustive():
    m = Model()
    stats, custom = core.state(m, core.BatchStat, Custom)
    assert set(stats.paths()) == {MEAN, VAR}
    assert set(custom.paths()) == {STEPS}


def test_raw_arrays_are_selected_by_array_type():
    m = Model()
    m.raw = jnp.ones(3)
    assert core.state(m, jax.Array).paths() == [("raw",)]
    assert ("raw",) not in core.state(m, core.Variable).paths()
    _, arrays, rest = core.split(m, jax.Array, ...)
    assert arrays.paths() == [("raw",)]
    assert ("raw",) in core.state(m, core.Not(core.Variable)).paths()


def test_callable_filter_gets_path_and_value():
    seen = {}

    def record(path, value):
        seen[path] = value
        return False

    core.state(Model(), record)
    assert set(seen) == ALL_PATHS
    assert isinstance(seen[KERNEL], core.Param)
    assert isinstance(seen[STEPS], Custom)


# -- hashing ---------------------------------------------------------------------------
HASHABLE_FILTERS = [
    core.Param,
    (core.Param, core.BatchStat),
    core.All(core.Param, core.PathContains("sub")),
    core.Any(core.Param, Custom),
    core.Not(core.Param),
    core.PathContains("kernel"),
    core.Everything,
    ...,
    core.Nothing,
    True,
    False,
    is_steps,
]


@pytest.mark.parametrize("filt", HASHABLE_FILTERS, ids=repr)
def test_filters_and_their_predicates_are_hashable(filt):
    hash(filt)
    pred = core.to_predicate(filt)
    hash(pred)
    assert pred == core.to_predicate(filt)
    assert hash(pred) == hash(core.to_predicate(filt))


def test_equal_filters_are_equal_and_hash_equal():
    pairs = [
        (
            core.All(core.Param, core.PathContains("a")),
            core.All(core.Param, core.PathContains("a")),
        ),
        (core.Any(core.Param, Custom), core.Any(core.Param, Custom)),
        (core.Not(core.Param), core.Not(core.Param)),
        (core.PathContains("a"), core.PathContains("a")),
        (core.OfType(core.Param), core.to_predicate(core.Param)),
    ]
    for a, b in pairs:
        assert a == b
        assert hash(a) == hash(b)
    assert core.All(core.Param) != core.Any(core.Param)
    assert core.PathContains("a") != core.PathContains("b")
    assert core.Not(core.Param) != core.Not(core.BatchStat)


def test_list_filter_becomes_a_hashable_predicate():
    pred = core.to_predicate([core.Param, core.BatchStat])
    hash(pred)
    assert pred == core.to_predicate((core.Param, core.BatchStat))


# -- errors ----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [3, 2.5, b"Param"], ids=repr)
def test_invalid_filter_raises(bad):
    m = Model()
    expected = _errors.UNKNOWN_FILTER.format(filter=bad)
    with pytest.raises(core.FilterError) as info:
        core.state(m, bad)
    assert str(info.value) == expected
    assert isinstance(info.value, ValueError)
    with pytest.raises(core.FilterError) as info:
        core.split(m, bad, ...)
    assert str(info.value) == expected
    with pytest.raises(core.FilterError) as info:
        core.to_predicate(bad)
    assert str(info.value) == expected


def test_invalid_filter_nested_in_a_combinator_raises():
    for make in [
        lambda: core.Not(3),
        lambda: core.Any(core.Param, 3),
        lambda: core.All(3),
        lambda: core.to_predicate((core.Param, 2.5)),
        lambda: core.to_predicate([core.Param, 3]),
    ]:
        with pytest.raises(core.FilterError, match="is not a filter"):
            make()


def test_ints_equal_to_true_and_false_are_still_invalid_filters():
    # True == 1 and False == 0 in Python; using True/False first must not make 1/0 filters.
    m = Model()
    assert set(core.state(m, True).paths()) == ALL_PATHS
    assert core.state(m, False).paths() == []
    with pytest.raises(core.FilterError):
        core.state(m, 1)
    with pytest.raises(core.FilterError):
        core.split(m, 0, ...)
    with pytest.raises(core.FilterError):
        core.state(m, 1.0)


class Leftovers(core.Module):
    def __init__(self):
        self.w = core.Param(jnp.ones(2))
        self.sub = Sub()
        self.stats = [core.BatchStat(jnp.zeros(1)), core.BatchStat(jnp.zeros(1))]
        self.table = {"count": Custom(jnp.array(0)), "cache": core.Cache(jnp.zeros(3))}
        self.raw = jnp.ones(4)


LEFTOVER_PATHS = ["sub/mean", "stats/0", "stats/1", "table/count", "table/cache", "raw"]


def test_non_exhaustive_split_names_every_leftover_path():
    m = Leftovers()
    with pytest.raises(core.FilterError) as info:
        core.split(m, core.Param)
    message = str(info.value)
    assert f"{len(LEFTOVER_PATHS)} value(s) match none of the filters (Param)" in message
    listed = [line[4:].split(" ")[0] for line in message.splitlines() if line.startswith("  - ")]
    assert sorted(listed) == sorted(LEFTOVER_PATHS)
    assert "sub/kernel" not in listed and "w" not in listed
    assert "`...`" in message  # says how to fix it


def test_non_exhaustive_split_with_several_filters():
    m = Leftovers()
    with pytest.raises(core.FilterError) as info:
        core.split(m, core.Param, core.BatchStat)
    message = str(info.value)
    listed = [line[4:].split(" ")[0] for line in message.splitlines() if line.startswith("  - ")]
    assert sorted(listed) == ["raw", "table/cache", "table/count"]


def test_split_ending_with_ellipsis_catches_the_rest():
    m = Leftovers()
    graphdef, params, stats, rest = core.split(m, core.Param, core.BatchStat, ...)
    assert set(params.paths()) == {("w",), ("sub", "kernel")}
    assert set(stats.paths()) == {("sub", "mean"), ("stats", 0), ("stats", 1)}
    assert set(rest.paths()) == {("table", "count"), ("table", "cache"), ("raw",)}
    rebuilt = core.merge(graphdef, params, stats, rest)
    np.testing.assert_array_equal(rebuilt.raw, np.ones(4))
    assert type(rebuilt.table["count"]) is Custom


def test_split_without_filters_and_with_everything():
    m = Leftovers()
    _, whole = core.split(m)
    _, everything = core.split(m, ...)
    assert whole.flat_state().keys() == everything.flat_state().keys()


# -- property: split partitions every path exactly once -------------------------------------
KINDS = [core.Param, core.BatchStat, core.Cache, Custom, core.Intermediate, None]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.sampled_from(range(len(KINDS))), min_size=0, max_size=8),
    st.lists(st.integers(-100, 100), min_size=8, max_size=8),
)
def test_split_partitions_every_path_exactly_once(kind_ids, values):
    m = core.Module()
    expected = {}
    for i, k in enumerate(kind_ids):
        kind = KINDS[k]
        value = jnp.full((i % 3 + 1,), float(values[i]))
        setattr(m, f"a{i}", value if kind is None else kind(value))
        expected[(f"a{i}",)] = kind

    graphdef, params, stats, rest = core.split(m, core.Param, core.BatchStat, ...)
    parts = [params.paths(), stats.paths(), rest.paths()]
    seen = [p for part in parts for p in part]
    assert sorted(seen) == sorted(expected)  # each path exactly once
    assert len(seen) == len(set(seen))
    for path in params.paths():
        assert expected[path] is core.Param
    for path in stats.paths():
        assert expected[path] is core.BatchStat
    for path in rest.paths():
        assert expected[path] not in (core.Param, core.BatchStat)

    rebuilt = core.merge(graphdef, params, stats, rest)
    for (name,), kind in expected.items():
        got, want = getattr(rebuilt, name), getattr(m, name)
        if kind is None:
            np.testing.assert_array_equal(got, want)
        else:
            assert type(got) is kind
            assert got is not want
            np.testing.assert_array_equal(got.value, want.value)
    merged = core.State.merge(params, stats, rest)
    assert set(merged.paths()) == set(expected)


def test_callable_filters_are_not_kept_alive_after_use():
    # A fresh lambda per call (e.g. once per training step) must not pile up in a cache.
    m = Model()

    def make_filter():
        return lambda path, value: path[-1] == "bias"

    f = make_filter()
    ref = weakref.ref(f)
    assert core.state(m, f).paths() == [BIAS]
    core.split(m, f, ...)
    del f
    gc.collect()
    assert ref() is None
