"""split / merge / update / state / graphdef / clone / pop on object graphs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core
from ramie.core import _errors


class Count(core.Variable):
    pass


class Leaf(core.Module):
    def __init__(self, n: int = 2):
        self.w = core.Param(jnp.arange(n, dtype=jnp.float32))
        self.stat = core.BatchStat(jnp.zeros(()))
        self.raw = jnp.ones(3)
        self.name = "leaf"


class Tree(core.Module):
    def __init__(self):
        shared = Leaf()
        self.a = shared
        self.b = shared
        self.blocks = [Leaf(3), Leaf(4)]
        self.table = {"x": core.Param(jnp.ones(1)), "y": 3}
        self.pair = (jnp.zeros(2), "static")
        self.count = Count(jnp.array(0))


def test_split_state_holds_every_leaf_once_with_its_path():
    t = Tree()
    graphdef, state = core.split(t)
    assert set(graphdef.paths) == {
        ("a", "w"),
        ("a", "stat"),
        ("a", "raw"),
        ("blocks", 0, "w"),
        ("blocks", 0, "stat"),
        ("blocks", 0, "raw"),
        ("blocks", 1, "w"),
        ("blocks", 1, "stat"),
        ("blocks", 1, "raw"),
        ("table", "x"),
        ("pair", 0),
        ("count",),
    }
    assert "b" not in state  # shared: stored once, at its first path
    assert isinstance(state.a.w, core.Param)
    assert state.blocks[1].w.value.shape == (4,)
    assert state.a.raw.shape == (3,)  # raw arrays are leaves as they are


def test_state_is_a_snapshot_not_an_alias():
    t = Tree()
    s = core.state(t)
    assert s.a.w is not t.a.w
    s.a.w.value = jnp.full(2, 9.0)
    assert float(t.a.w.value[0]) == 0.0
    t.a.w.value = jnp.full(2, 5.0)
    assert float(s.a.w.value[0]) == 9.0


def test_merge_rebuilds_sharing_types_statics_and_containers():
    t = Tree()
    m = core.merge(*core.split(t))
    assert type(m) is Tree and m is not t
    assert m.a is m.b
    assert m.a.w is not t.a.w
    assert m.a.name == "leaf" and m.table["y"] == 3 and m.pair[1] == "static"
    assert isinstance(m.blocks, list) and len(m.blocks) == 2
    assert isinstance(m.table, dict) and isinstance(m.pair, tuple)
    np.testing.assert_array_equal(m.blocks[1].w.value, t.blocks[1].w.value)
    np.testing.assert_array_equal(m.pair[0], t.pair[0])


def test_cycles_round_trip():
    class Node(core.Module):
        def __init__(self):
            self.v = core.Param(jnp.ones(1))

    a, b = Node(), Node()
    a.other, b.other = b, a
    a.me = a
    m = core.merge(*core.split(a))
    assert m.other.other is m
    assert m.me is m
    assert m.other is not a.other


def test_update_writes_in_place_and_keeps_identity():
    t = Tree()
    w_obj = t.a.w
    graphdef, state = core.split(t)
    state = jax.tree.map(lambda x: x + 1, state)
    core.update(t, state)
    assert t.a.w is w_obj
    np.testing.assert_array_equal(t.a.w.value, [1.0, 2.0])
    np.testing.assert_array_equal(t.b.w.value, [1.0, 2.0])  # shared
    np.testing.assert_array_equal(t.a.raw, np.full(3, 2.0))
    np.testing.assert_array_equal(t.pair[0], np.ones(2))  # inside a tuple
    assert int(t.count.value) == 1


def test_update_with_several_partial_states():
    t = Tree()
    _, params, rest = core.split(t, core.Param, ...)
    params = jax.tree.map(jnp.zeros_like, params)
    core.update(t, params)
    assert float(t.blocks[0].w.value.sum()) == 0.0
    assert float(t.a.raw.sum()) == 3.0  # untouched
    rest = jax.tree.map(lambda x: x * 0, rest)
    core.update(t, params, rest)
    assert float(t.a.raw.sum()) == 0.0


def test_update_adds_new_variables_under_existing_modules():
    t = Tree()
    s = core.State({"a": {"h": core.Intermediate((jnp.ones(2),))}})
    core.update(t, s)
    assert isinstance(t.a.h, core.Intermediate)
    assert t.b.h is t.a.h


def test_update_without_a_parent_names_the_path():
    t = Tree()
    s = core.State({"nope": {"deeper": core.Param(jnp.ones(1))}})
    with pytest.raises(core.GraphError, match="nope/deeper") as info:
        core.update(t, s)
    assert "nothing at 'nope'" in str(info.value)


def test_update_kind_mismatch_is_an_error():
    t = Tree()
    s = core.State({"a": {"w": core.BatchStat(jnp.ones(2))}})
    with pytest.raises(core.GraphError) as info:
        core.update(t, s)
    assert str(info.value) == _errors.UPDATE_KIND_MISMATCH.format(
        found="BatchStat", path="a/w", expected="Param"
    )


def test_update_accepts_pure_arrays_and_string_list_indices():
    t = Tree()
    core.update(t, {"blocks": {"1": {"w": jnp.full(4, 7.0)}}})
    np.testing.assert_array_equal(t.blocks[1].w.value, np.full(4, 7.0))
    assert isinstance(t.blocks[1].w, core.Param)


def test_update_rejects_non_array_leaves():
    t = Tree()
    with pytest.raises(core.StateLeafError, match="a/w"):
        core.update(t, {"a": {"w": "not an array"}})


def test_split_with_filters_partitions_exhaustively():
    t = Tree()
    graphdef, params, counts, rest = core.split(t, core.Param, Count, ...)
    assert set(params.flat_state()) == {
        ("a", "w"),
        ("blocks", 0, "w"),
        ("blocks", 1, "w"),
        ("table", "x"),
    }
    assert set(counts.flat_state()) == {("count",)}
    assert ("a", "stat") in rest.flat_state() and ("pair", 0) in rest.flat_state()
    m = core.merge(graphdef, params, counts, rest)
    assert m.a is m.b and int(m.count.value) == 0


def test_leftover_error_names_every_path():
    t = Tree()
    with pytest.raises(core.FilterError) as info:
        core.split(t, core.Param, Count)
    msg = str(info.value)
    for path in ["a/stat", "a/raw", "blocks/0/stat", "blocks/1/raw", "pair/0"]:
        assert f"  - {path} (" in msg
    assert "7 value(s) match none of the filters (Param, Count)" in msg
    assert "`...`" in msg


def test_state_with_filters_is_not_exhaustive():
    t = Tree()
    params = core.state(t, core.Param)
    assert ("a", "stat") not in params.flat_state()
    p, c = core.state(t, core.Param, Count)
    assert list(c) == ["count"]


def test_graphdef_is_hashable_static_and_a_leafless_pytree():
    t1, t2 = Tree(), Tree()
    g1, g2 = core.graphdef(t1), core.graphdef(t2)
    assert g1 == g2 and hash(g1) == hash(g2)
    assert jax.tree.leaves(g1) == []
    t2.extra = core.Param(jnp.ones(1))
    assert core.graphdef(t2) != g1
    t2.blocks[0].name = "changed"
    assert core.graphdef(t2) != g1


def test_graphdef_cache_is_invalidated_by_structural_changes():
    t = Tree()
    g0 = core.graphdef(t)
    assert core.graphdef(t) is g0  # cached
    t.a.w.value = jnp.zeros(2)  # a value change is not structural
    assert core.graphdef(t) is g0
    t.raw_extra = jnp.ones(1)
    g1 = core.graphdef(t)
    assert ("raw_extra",) in g1.paths
    t.blocks.append(Leaf(5))
    g2 = core.graphdef(t)
    assert ("blocks", 2, "w") in g2.paths
    del t.blocks[0]
    assert ("blocks", 2, "w") not in core.graphdef(t).paths
    t.table["z"] = core.Cache(jnp.ones(1))
    assert ("table", "z") in core.graphdef(t).paths
    t.a.w.sharding = ("x",)  # metadata is structure
    assert core.graphdef(t).node != g2.node


def test_replacing_raw_array_values_is_seen_without_rewalk():
    t = Tree()
    core.graphdef(t)
    t.a.raw = jnp.full(3, 4.0)
    np.testing.assert_array_equal(core.state(t).a.raw, np.full(3, 4.0))


def test_merge_missing_leaf_names_path():
    t = Tree()
    graphdef, params, rest = core.split(t, core.Param, ...)
    with pytest.raises(core.GraphError) as info:
        core.merge(graphdef, params)
    assert "'a/stat'" in str(info.value)
    assert "none of the 1 State(s)" in str(info.value)


def test_merge_extra_leaf_names_path():
    t = Tree()
    graphdef, state = core.split(t)
    state["surprise"] = core.Param(jnp.ones(1))
    with pytest.raises(core.GraphError) as info:
        core.merge(graphdef, state)
    assert str(info.value) == _errors.MERGE_EXTRA_LEAF.format(path="surprise", found="Param")


def test_merge_mapping_where_leaf_expected():
    t = Tree()
    graphdef, state = core.split(t)
    state["count"] = core.State({"oops": core.Param(jnp.ones(1))})
    with pytest.raises(core.GraphError, match="expected a Variable at 'count'"):
        core.merge(graphdef, state)


def test_merge_requires_a_graphdef():
    with pytest.raises(core.GraphError, match="takes a GraphDef"):
        core.merge({"a": 1}, core.State())


def test_merge_accepts_pure_dict_states():
    t = Tree()
    graphdef, state = core.split(t)
    m = core.merge(graphdef, core.to_pure_dict(state))
    assert isinstance(m.a.w, core.Param) and isinstance(m.count, Count)
    np.testing.assert_array_equal(m.blocks[0].w.value, t.blocks[0].w.value)


def test_several_objects_at_once_keep_shared_references():
    t = Tree()
    holder = core.Module()
    holder.tree = t
    graphdef, state = core.split((t, holder))
    t2, holder2 = core.merge(graphdef, state)
    assert holder2.tree is t2
    assert "1" not in state and 1 not in state  # the holder adds no leaves


def test_nested_containers_as_root():
    a, b = Leaf(), Leaf()
    graphdef, state = core.split({"models": [a, b], "same": a})
    out = core.merge(graphdef, state)
    assert out["same"] is out["models"][0]
    assert out["models"][1] is not out["models"][0]


def test_clone_is_deep_and_independent():
    t = Tree()
    c = core.clone(t)
    assert c.a is c.b and c.a is not t.a
    c.a.w.value = c.a.w.value + 10
    assert float(t.a.w.value[0]) == 0.0


def test_pop_removes_and_returns():
    class M(core.Module):
        def __init__(self):
            self.w = core.Param(jnp.ones(1))
            self.inner = Leaf()

        def __call__(self, x):
            self.sow(core.Intermediate, "h", x)
            self.inner.sow(core.Intermediate, "g", x * 2)
            return x

    m = M()
    m(jnp.ones(1))
    popped = core.pop(m, core.Intermediate)
    assert set(popped.flat_state()) == {("h",), ("inner", "g")}
    assert not hasattr(m, "h") and not hasattr(m.inner, "g")
    assert set(core.state(m).flat_state()) == {
        ("w",),
        ("inner", "w"),
        ("inner", "stat"),
        ("inner", "raw"),
    }


def test_pop_from_a_tuple_is_an_error():
    class M(core.Module):
        def __init__(self):
            self.pair = (core.Intermediate(jnp.ones(1)), 1)

    with pytest.raises(core.GraphError, match="inside a tuple"):
        core.pop(M(), core.Intermediate)


def test_split_merge_update_under_plain_jax_jit():
    t = Tree()
    graphdef, state = core.split(t)

    @jax.jit
    def step(graphdef, state):
        m = core.merge(graphdef, state)
        m.count += 1
        m.a.w.value = m.a.w.value * 2
        m.blocks[0].raw = m.blocks[0].raw + 1
        return core.split(m)[1]

    for _ in range(3):
        state = step(graphdef, state)
    core.update(t, state)
    assert int(t.count.value) == 3
    np.testing.assert_array_equal(t.b.w.value, [0.0, 8.0])
    np.testing.assert_array_equal(t.blocks[0].raw, np.full(3, 4.0))


def test_unclassifiable_attribute_names_path():
    t = Tree()
    t.blocks[1].bad = {1, 2}
    with pytest.raises(core.UnclassifiableAttributeError) as info:
        core.split(t)
    assert "'blocks/1/bad'" in str(info.value)
    assert "set" in str(info.value)


def test_flatten_values_and_set_values():
    t = Tree()
    fg = core.flatten(t)
    values = fg.values()
    assert len(values) == len(fg.paths)
    fg.set_values([jnp.asarray(v) * 0 for v in values])
    assert float(t.a.w.value.sum()) == 0.0 and float(t.pair[0].sum()) == 0.0
    assert fg.is_current()
    t.new = core.Param(jnp.ones(1))
    assert not fg.is_current()


def test_unflatten_takes_raw_values_in_paths_order():
    t = Tree()
    fg = core.flatten(t)
    m = core.unflatten(fg.graphdef, [jnp.asarray(v) + 1 for v in fg.values()])
    assert isinstance(m.a.w, core.Param)
    np.testing.assert_array_equal(m.a.w.value, [1.0, 2.0])
    with pytest.raises(core.GraphError, match="leaves"):
        core.unflatten(fg.graphdef, [])


def test_abstract_arrays_are_state_not_static():
    t = Tree()
    graphdef, state = core.split(t)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    core.update(t, abstract)
    assert isinstance(t.a.raw, jax.ShapeDtypeStruct)
    assert core.graphdef(t) == graphdef  # still a leaf slot, not a static attribute
    core.update(t, state)
    np.testing.assert_array_equal(t.a.raw, np.ones(3))


def test_a_bare_leaf_cannot_be_split_but_a_tuple_of_them_can():
    v = core.Param(jnp.ones(2))
    for bare in [v, jnp.ones(3)]:
        with pytest.raises(core.GraphError) as info:
            core.split(bare)
        assert str(info.value) == _errors.ROOT_IS_A_LEAF.format(type_name=type(bare).__name__)
    graphdef, state = core.split((v,))
    (copy,) = core.merge(graphdef, state)
    assert isinstance(copy, core.Param) and copy is not v
