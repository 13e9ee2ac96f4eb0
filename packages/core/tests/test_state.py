"""State: a nested dict of Variables that is a pytree, with flat views, filters, pure dicts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core
from ramie.core import _errors


class Count(core.Variable):
    pass


def make_state() -> core.State:
    return core.State(
        {
            "linear": {
                "kernel": core.Param(jnp.ones((2, 3)), sharding=("in", "out")),
                "bias": core.Param(jnp.zeros(3)),
            },
            "bn": {"mean": core.BatchStat(jnp.zeros(3)), "var": core.BatchStat(jnp.ones(3))},
            "steps": Count(jnp.array(0)),
        }
    )


class Block(core.Module):
    def __init__(self):
        self.layers = [
            core.Param(jnp.ones(2), sharding=("a",)),
            core.Param(jnp.zeros(2)),
        ]
        self.bn = core.BatchStat(jnp.ones(1), axis=("batch",))
        self.head = {"w": core.Param(jnp.full((2,), 3.0))}


# -- a dict with attribute access ----------------------------------------------------------
def test_state_is_a_dict():
    s = make_state()
    assert isinstance(s, dict)
    assert set(s) == {"linear", "bn", "steps"}
    assert len(s) == 3
    assert "linear" in s


def test_attribute_and_item_access():
    s = make_state()
    assert s.linear.kernel is s["linear"]["kernel"]
    assert isinstance(s.linear.kernel, core.Param)
    assert s.steps is s["steps"]
    with pytest.raises(AttributeError, match="nonexistent"):
        _ = s.nonexistent
    with pytest.raises(KeyError):
        _ = s["nonexistent"]


def test_attribute_assignment_sets_an_entry():
    s = core.State()
    s.w = core.Param(jnp.ones(1))
    s["sub"] = {"b": core.Param(jnp.zeros(1))}
    assert list(s) == ["w", "sub"]
    assert type(s.sub) is core.State
    assert isinstance(s.sub.b, core.Param)


def test_nested_dicts_become_states():
    s = core.State({"a": {"b": {"c": core.Param(jnp.ones(1))}}}, d={"e": jnp.zeros(1)})
    assert type(s.a) is core.State
    assert type(s.a.b) is core.State
    assert type(s.d) is core.State
    assert isinstance(s.a.b.c, core.Param)


# -- flat views --------------------------------------------------------------------------
def test_flat_state_paths_leaves():
    s = make_state()
    flat = s.flat_state()
    expected_paths = [
        ("linear", "kernel"),
        ("linear", "bias"),
        ("bn", "mean"),
        ("bn", "var"),
        ("steps",),
    ]
    assert list(flat) == expected_paths
    assert s.paths() == expected_paths
    assert s.leaves() == list(flat.values())
    assert s.leaves()[0] is s.linear.kernel
    assert all(isinstance(v, core.Variable) for v in s.leaves())


def test_from_flat_state_round_trip():
    s = make_state()
    back = core.State.from_flat_state(s.flat_state())
    assert type(back) is core.State
    assert type(back.linear) is core.State
    assert back == s
    assert back.flat_state() == s.flat_state()
    assert back.linear.kernel is s.linear.kernel


# -- pytree ------------------------------------------------------------------------------
def test_tree_map_keeps_structure_kinds_and_metadata():
    s = make_state()
    doubled = jax.tree.map(lambda x: x * 2, s)
    assert type(doubled) is core.State
    assert type(doubled.linear) is core.State
    assert set(doubled.paths()) == set(s.paths())
    assert type(doubled.linear.kernel) is core.Param
    assert doubled.linear.kernel.sharding == ("in", "out")
    assert type(doubled.bn.var) is core.BatchStat
    assert type(doubled.steps) is Count
    np.testing.assert_array_equal(doubled.bn.var.value, 2 * np.ones(3))
    np.testing.assert_array_equal(s.bn.var.value, np.ones(3))  # not mutated
    assert len(jax.tree.leaves(s)) == 5
    assert jax.tree.structure(doubled) == jax.tree.structure(s)


def test_jit_identity_round_trip():
    s = make_state()
    out = jax.jit(lambda s: s)(s)
    assert type(out) is core.State
    assert jax.tree.structure(out) == jax.tree.structure(s)
    for path, leaf in s.flat_state().items():
        got = out.flat_state()[path]
        assert type(got) is type(leaf)
        assert got.metadata == leaf.metadata
        np.testing.assert_array_equal(got.value, leaf.value)


def test_jit_computes_on_states():
    s = make_state()

    @jax.jit
    def step(s):
        return jax.tree.map(lambda x: x + 1, s)

    out = step(s)
    np.testing.assert_array_equal(out.linear.bias.value, np.ones(3))
    assert int(out.steps.value) == 1
    assert type(out.steps) is Count


def test_key_order_does_not_matter_for_tree_operations():
    s1 = core.State(
        {
            "x": core.Param(jnp.ones(2)),
            "y": {"a": core.BatchStat(jnp.ones(1)), "b": core.Param(jnp.full(1, 2.0))},
        }
    )
    s2 = core.State(
        {
            "y": {"b": core.Param(jnp.full(1, 20.0)), "a": core.BatchStat(jnp.full(1, 10.0))},
            "x": core.Param(jnp.full(2, 5.0)),
        }
    )
    assert jax.tree.structure(s1) == jax.tree.structure(s2)
    total = jax.tree.map(lambda a, b: a + b, s1, s2)
    np.testing.assert_array_equal(total.x.value, [6.0, 6.0])
    np.testing.assert_array_equal(total.y.a.value, [11.0])
    np.testing.assert_array_equal(total.y.b.value, [22.0])
    assert type(total.y.a) is core.BatchStat


def test_mixed_int_and_str_keys_flatten():
    s = core.State(
        {
            "layers": {
                0: {"w": core.Param(jnp.full(1, 0.0))},
                1: {"w": core.Param(jnp.full(1, 1.0))},
                "head": core.Param(jnp.full(1, 2.0)),
            },
            10: core.Param(jnp.full(1, 3.0)),
        }
    )
    leaves = jax.tree.leaves(s)
    assert len(leaves) == 4
    out = jax.tree.map(lambda x: x + 1, s)
    assert set(out.paths()) == set(s.paths())
    np.testing.assert_array_equal(out.layers[1].w.value, [2.0])
    np.testing.assert_array_equal(out.layers["head"].value, [3.0])
    np.testing.assert_array_equal(out[10].value, [4.0])
    paths = jax.tree_util.tree_flatten_with_path(s)[0]
    assert len(paths) == 4
    back = jax.jit(lambda s: s)(s)
    assert set(back.paths()) == set(s.paths())


def test_int_keys_flatten_in_numeric_order():
    s = core.State({i: core.Param(jnp.full(1, float(i))) for i in [10, 2, 1, 0]})
    values = [float(x[0]) for x in jax.tree.leaves(s)]
    assert values == sorted(values)


# -- pure dicts --------------------------------------------------------------------------
def test_to_pure_dict():
    st = core.state(Block())
    pure = core.to_pure_dict(st)
    assert type(pure) is dict
    assert type(pure["layers"]) is dict
    assert set(pure["layers"]) == {0, 1}
    assert isinstance(pure["layers"][0], jax.Array)
    assert isinstance(pure["bn"], jax.Array)
    np.testing.assert_array_equal(pure["head"]["w"], [3.0, 3.0])
    assert not any(isinstance(v, core.Variable) for v in jax.tree.leaves(pure))


def test_replace_by_pure_dict_with_string_index_keys():
    st = core.state(Block())
    pure = {
        "layers": {"0": jnp.full(2, 7.0), "1": jnp.full(2, 8.0)},
        "bn": jnp.full(1, 9.0),
        "head": {"w": jnp.full(2, 1.0)},
    }
    assert core.replace_by_pure_dict(st, pure) is None
    np.testing.assert_array_equal(st.layers[0].value, [7.0, 7.0])
    np.testing.assert_array_equal(st.layers[1].value, [8.0, 8.0])
    np.testing.assert_array_equal(st.bn.value, [9.0])
    # kinds and metadata are kept
    assert type(st.layers[0]) is core.Param
    assert st.layers[0].sharding == ("a",)
    assert type(st.bn) is core.BatchStat
    assert st.bn.axis == ("batch",)


def test_replace_by_pure_dict_round_trip_with_int_keys():
    m = Block()
    st = core.state(m)
    pure = jax.tree.map(lambda x: x + 1, core.to_pure_dict(st))
    core.replace_by_pure_dict(st, pure)
    core.update(m, st)
    np.testing.assert_array_equal(m.layers[1].value, [1.0, 1.0])
    np.testing.assert_array_equal(m.head["w"].value, [4.0, 4.0])


def test_replace_by_pure_dict_lists_extra_paths():
    st = core.state(Block())
    pure = {
        "layers": {"0": jnp.ones(2), "1": jnp.ones(2), "2": jnp.ones(2)},
        "bn": jnp.ones(1),
        "head": {"w": jnp.ones(2)},
        "extra": jnp.ones(1),
    }
    with pytest.raises(core.GraphError) as info:
        core.replace_by_pure_dict(st, pure)
    message = str(info.value)
    assert message == _errors.REPLACE_EXTRA_KEYS.format(
        paths=_errors.format_paths(["layers/2", "extra"])
    )


def test_replace_by_pure_dict_lists_missing_paths():
    st = core.state(Block())
    pure = {"layers": {"0": jnp.ones(2)}, "head": {}}
    with pytest.raises(core.GraphError) as info:
        core.replace_by_pure_dict(st, pure)
    message = str(info.value)
    assert "replace_by_pure_dict()" in message
    for path in ["layers/1", "bn", "head/w"]:
        assert f"  - {path}" in message
    assert "  - layers/0" not in message


def test_replace_by_pure_dict_rejects_non_array_values():
    st = core.state(Block())
    pure = core.to_pure_dict(st)
    pure["bn"] = "not an array"
    with pytest.raises(core.StateLeafError, match="bn"):
        core.replace_by_pure_dict(st, pure)


# -- filter and merge --------------------------------------------------------------------
def test_filter_one():
    s = make_state()
    params = s.filter(core.Param)
    assert type(params) is core.State
    assert params.paths() == [("linear", "kernel"), ("linear", "bias")]
    assert params.linear.kernel is s.linear.kernel


def test_filter_several_first_match_wins():
    s = make_state()
    params, variables = s.filter(core.Param, core.Variable)
    assert params.paths() == [("linear", "kernel"), ("linear", "bias")]
    assert variables.paths() == [("bn", "mean"), ("bn", "var"), ("steps",)]


def test_filter_is_not_exhaustive():
    s = make_state()
    stats, counts = s.filter(core.BatchStat, Count)
    assert stats.paths() == [("bn", "mean"), ("bn", "var")]
    assert counts.paths() == [("steps",)]
    nothing = s.filter(core.Cache)
    assert nothing == {}
    assert nothing.paths() == []


def test_filter_with_path_and_callable_filters():
    s = make_state()
    assert s.filter(core.PathContains("bn")).paths() == [("bn", "mean"), ("bn", "var")]
    assert s.filter(lambda path, v: path[-1] == "bias").paths() == [("linear", "bias")]


def test_merge_of_filtered_parts_equals_original():
    s = make_state()
    params, rest = s.filter(core.Param, ...)
    merged = core.State.merge(params, rest)
    assert type(merged) is core.State
    assert merged.flat_state() == s.flat_state()
    assert merged == s
    stats, counts, params2 = s.filter(core.BatchStat, Count, core.Param)
    assert core.State.merge(params2, counts, stats).flat_state() == s.flat_state()


def test_merge_later_state_wins_on_conflicts():
    a = core.State({"w": core.Param(jnp.zeros(1))})
    b = core.State({"w": core.Param(jnp.ones(1))})
    np.testing.assert_array_equal(core.State.merge(a, b).w.value, [1.0])


def test_repr_renders_a_tree():
    text = repr(make_state())
    assert text.splitlines()[0] == "State"
    assert "kernel: Param float32[2, 3]" in text
    assert "sharding=('in', 'out')" in text
    assert "steps: Count" in text
