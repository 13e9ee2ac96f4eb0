"""NNX graph utilities: iter_graph, recursive_map, map, as_abstract, unpack, merge_state,
prefix, GraphDef.apply / call, capture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie import core
from ramie.core import _errors


class Linear(core.Module):
    def __init__(self, din, dout, seed=0):
        self.din, self.dout = din, dout
        self.w = core.Param(jax.random.normal(jax.random.key(seed), (din, dout)))
        self.b = core.Param(jnp.zeros((dout,)))

    def __call__(self, x):
        return x @ self.w + self.b


class Counter(core.Module):
    def __init__(self):
        self.lin = Linear(2, 3)
        self.count = core.BatchStat(jnp.array(0))

    def __call__(self, x):
        self.count.value = self.count.value + 1
        self.sow(core.Intermediate, "hidden", x * 2)
        return self.lin(x)

    def peek(self, k):
        return self.count.value + k


# -- iter_graph ------------------------------------------------------------------------
def test_iter_graph_is_post_order_and_visits_shared_objects_once():
    m = Linear(2, 3)
    got = [(p, type(v).__name__) for p, v in core.iter_graph([m, m])]
    assert got == [
        ((0, "din"), "int"),
        ((0, "dout"), "int"),
        ((0, "w"), "Param"),
        ((0, "b"), "Param"),
        ((0,), "Linear"),
        ((), "list"),
    ]


def test_iter_graph_handles_cycles_and_shared_containers():
    a = Linear(1, 1)
    a.me = a
    a.box = core.Dict(x=a.w)
    a.box2 = a.box
    paths = [p for p, _ in core.iter_graph(a)]
    assert paths.count(()) == 1
    assert ("box2",) not in paths  # the shared Dict is visited at ('box',) only
    assert ("box", "x") not in paths  # and the shared Param at ('w',) only
    assert ("w",) in paths


# -- recursive_map ---------------------------------------------------------------------
def test_recursive_map_replaces_values_children_first_and_keeps_the_input():
    m = Counter()
    seen = []

    def f(path, value):
        seen.append(path)
        if isinstance(value, Linear):
            return Linear(2, 5, seed=1)  # replace a submodule
        return value

    new = core.recursive_map(f, m)
    assert seen[-1] == () and seen.index(("lin", "w")) < seen.index(("lin",))
    assert isinstance(new, Counter) and new is not m
    assert new.lin.dout == 5 and m.lin.dout == 3  # the original is untouched
    assert new.count is m.count  # Variables are shared with the input


def test_recursive_map_maps_shared_objects_once_and_keeps_them_shared():
    m = Counter()
    m.other = m.lin
    calls = []

    def f(path, value):
        if isinstance(value, Linear):
            calls.append(path)
        return value

    new = core.recursive_map(f, m)
    assert calls == [("lin",)]
    assert new.other is new.lin and new.lin is not m.lin


def test_recursive_map_refuses_a_cycle_naming_where():
    m = Linear(1, 1)
    m.me = m
    with pytest.raises(core.GraphError) as info:
        core.recursive_map(lambda p, v: v, m)
    assert str(info.value) == _errors.RECURSIVE_MAP_CYCLE.format(path="me", type_name="Linear")


# -- map / as_abstract -------------------------------------------------------------------
def test_map_builds_a_new_graph_with_mapped_leaves_and_sharing():
    m = Counter()
    m.alias = m.lin.w
    new = core.map(lambda path, v: v.replace(jnp.zeros_like(v.value)), m)
    assert float(jnp.abs(new.lin.w.value).sum()) == 0.0
    assert float(jnp.abs(m.lin.w.value).sum()) > 0.0
    assert new.alias is new.lin.w and type(new.count) is core.BatchStat
    # plain values go into the recorded Variable kind
    doubled = core.map(lambda path, v: v.value * 2, m)
    assert type(doubled.lin.w) is core.Param
    np.testing.assert_allclose(doubled.lin.w.value, 2 * m.lin.w.value)


def test_as_abstract_keeps_shapes_dtypes_kinds_and_drops_values():
    m = Counter()
    abstract = core.as_abstract(m)
    w = abstract.lin.w
    assert type(w) is core.Param and isinstance(w.value, jax.ShapeDtypeStruct)
    assert (w.value.shape, w.value.dtype) == ((2, 3), jnp.float32)
    assert abstract.count.value.dtype == m.count.value.dtype
    state_abstract = core.as_abstract(core.state(m))
    assert state_abstract["lin"]["b"].value.shape == (3,)
    # an abstract model restores from a real State
    core.update(abstract, core.state(m))
    np.testing.assert_array_equal(abstract.lin.w.value, m.lin.w.value)


# -- unpack / merge_state ----------------------------------------------------------------
def test_unpack_carries_the_graphdef_through_jit():
    m = Counter()
    params, rest = core.unpack(m, core.Param, ...)
    assert isinstance(params, core.GraphState) and params.graphdef == core.graphdef(m)
    doubled = jax.jit(lambda s: jax.tree.map(lambda x: x * 2, s))(params)
    assert isinstance(doubled, core.GraphState) and doubled.graphdef == params.graphdef
    new = core.merge(doubled, rest)
    np.testing.assert_allclose(new.lin.w.value, 2 * m.lin.w.value)
    assert type(core.merge(core.unpack(m))) is Counter


def test_merge_refuses_graph_states_mixed_with_plain_states():
    m = Counter()
    params, _ = core.unpack(m, core.Param, ...)
    with pytest.raises(core.GraphError) as info:
        core.merge(params, core.state(m, core.BatchStat))
    assert str(info.value) == _errors.GRAPH_STATE_MIXED.format(found="State")


def test_merge_state_combines_and_later_states_win():
    a = core.State({"x": core.Param(jnp.zeros(1)), "n": {"y": core.Param(jnp.zeros(2))}})
    b = core.State({"n": {"y": core.Param(jnp.ones(2)), "z": core.BatchStat(jnp.ones(1))}})
    merged = core.merge_state(a, b)
    assert sorted(merged.flat_state()) == [("n", "y"), ("n", "z"), ("x",)]
    assert merged["n"]["y"].value.tolist() == [1.0, 1.0]
    assert merged["n"]["y"] is not b["n"]["y"]
    assert core.merge_state(a, b, replace=True)["n"]["y"] is b["n"]["y"]


# -- prefix ------------------------------------------------------------------------------
def test_prefix_gives_in_axes_for_a_state():
    m = Counter()
    axes = core.prefix(m, {core.BatchStat: None, ...: 0})
    assert axes.flat_state() == {("lin", "w"): 0, ("lin", "b"): 0, ("count",): None}
    by_fn = core.prefix(m, lambda path, v: "x" if "lin" in path else "y")
    assert by_fn["count"] == "y" and by_fn["lin"]["w"] == "x"
    s = core.state(m)
    batched = jax.tree.map(lambda x: jnp.stack([x, x]), s.filter(core.Param))
    whole = core.merge_state(batched, s.filter(core.BatchStat))
    out = jax.vmap(lambda st: st["lin"]["w"].value.sum() + st["count"].value, in_axes=(axes,))(
        whole
    )
    assert out.shape == (2,)


def test_prefix_names_an_unmatched_leaf():
    with pytest.raises(core.FilterError) as info:
        core.prefix(Counter(), {core.Param: 0})
    assert str(info.value) == _errors.PREFIX_UNMATCHED.format(
        path="count", kind="BatchStat", filters="<class 'ramie.core._variables.Param'>"
    )


# -- GraphDef.apply / call ---------------------------------------------------------------
def test_graphdef_apply_is_a_pure_call_returning_the_new_state():
    m = Counter()
    graphdef, state = core.split(m)
    x = jnp.ones((1, 2))

    @jax.jit
    def step(state, x):
        return graphdef.apply(state)(x)

    y, (new_graphdef, new_state) = step(state, x)
    np.testing.assert_allclose(y, m.lin(x))
    assert int(new_state["count"].value) == 1 and int(m.count.value) == 0
    assert "hidden" in new_state and new_graphdef != graphdef  # the call sowed a value
    out, _ = new_graphdef.apply(new_state).peek(10)
    assert int(out) == 11
    # call((graphdef, state)) is the same, with attribute and item access
    holder = core.Dict(c=m)
    out, (_, after) = core.call(core.split(holder))["c"].peek(1)
    assert int(out) == 1


# -- capture -----------------------------------------------------------------------------
def test_capture_returns_only_this_calls_sown_values():
    m = Counter()
    m(jnp.ones((1, 2)))  # leaves an intermediate behind
    y, captured = core.capture(m)(jnp.full((1, 2), 3.0))
    assert captured["hidden"].value[0].tolist() == [[6.0, 6.0]]
    assert len(captured["hidden"].value) == 1 and not hasattr(m, "hidden")

    class Probe(core.Variable):
        pass

    def probed(model, x):
        model.sow(Probe, "probe", x + 1)
        return model(x)

    _, (probes, hidden) = core.capture(probed, Probe, core.Intermediate)(m, jnp.ones((1, 2)))
    assert probes["probe"].value[0].tolist() == [[2.0, 2.0]]
    assert hidden["hidden"].value[0].tolist() == [[2.0, 2.0]]
    assert int(m.count.value) == 3  # other state is left alone


def test_capture_needs_a_module():
    with pytest.raises(TypeError) as info:
        core.capture(lambda x: x)(1)
    assert str(info.value) == _errors.CAPTURE_NO_MODULE.format(fn="<lambda>")


# -- properties ----------------------------------------------------------------------------
@st.composite
def module_graphs(draw):
    n = draw(st.integers(1, 4))
    mods = [Linear(1, draw(st.integers(1, 3)), seed=i) for i in range(n)]
    for m in mods:
        for name in draw(st.lists(st.sampled_from(["p", "q", "r"]), max_size=2, unique=True)):
            target = draw(st.integers(0, n - 1))
            kind = draw(st.sampled_from(["mod", "var", "list"]))
            value = {"mod": mods[target], "var": mods[target].w, "list": [mods[target].b]}[kind]
            setattr(m, name, value)
    return mods[0]


def _identity_classes(root):
    groups = {}
    for path, value in core.iter_graph(root):
        groups.setdefault(id(value), []).append(path)
    return groups


@settings(max_examples=40, deadline=None)
@given(module_graphs())
def test_iter_graph_yields_each_object_once_and_map_identity_is_a_clone(root):
    seen = [id(v) for _, v in core.iter_graph(root) if isinstance(v, (core.Module, core.Variable))]
    assert len(seen) == len(set(seen))
    assert [p for p, _ in core.iter_graph(root)][-1] == ()
    same = core.map(lambda p, v: v, root)
    assert core.graphdef(same) == core.graphdef(root)
    for a, b in zip(core.state(same).leaves(), core.state(root).leaves(), strict=True):
        np.testing.assert_array_equal(a.value, b.value)


@settings(max_examples=40, deadline=None)
@given(module_graphs())
def test_recursive_map_identity_keeps_structure_and_variables(root):
    try:
        new = core.recursive_map(lambda p, v: v, root)
    except core.GraphError:  # a Module reachable from itself: refused, checked above
        return
    assert core.graphdef(new) == core.graphdef(root)

    def variables(x):
        return [id(v) for _, v in core.iter_graph(x) if isinstance(v, core.Variable)]

    assert variables(new) == variables(root)
