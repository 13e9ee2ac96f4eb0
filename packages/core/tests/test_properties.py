"""Property-based tests: random object graphs with sharing and cycles.

A graph description is drawn by hypothesis, built into Modules, Variables,
raw arrays, containers and static values, and pushed through split/merge,
``jax.jit`` and update. The checks use an independent traversal written here,
so they do not trust ramie's own GraphDef to describe the sharing.
"""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie import core

KINDS = [core.Param, core.BatchStat, core.Cache, core.Intermediate]


class Node(core.Module):
    pass


class Other(core.Module):
    pass


# An attribute value is described as one of:
#   ("mod", i) ("var", j) ("raw", size) ("static", value)
#   ("list", [...]) ("dict", {...}) ("tuple", [...])
def _value(n_mod, n_var):
    base = st.one_of(
        st.tuples(st.just("mod"), st.integers(0, n_mod - 1)),
        st.tuples(st.just("var"), st.integers(0, n_var - 1)),
        st.tuples(st.just("raw"), st.integers(1, 3)),
        st.tuples(st.just("static"), st.one_of(st.integers(-3, 3), st.text("ab", max_size=2))),
    )
    return st.recursive(
        base,
        lambda inner: st.one_of(
            st.tuples(st.just("list"), st.lists(inner, max_size=3)),
            st.tuples(st.just("tuple"), st.lists(inner, max_size=3)),
            st.tuples(st.just("dict"), st.dictionaries(st.sampled_from("xyz"), inner, max_size=3)),
        ),
        max_leaves=4,
    )


@st.composite
def graphs(draw):
    n_mod = draw(st.integers(1, 5))
    n_var = draw(st.integers(1, 6))
    var_kinds = draw(st.lists(st.integers(0, len(KINDS) - 1), min_size=n_var, max_size=n_var))
    var_sizes = draw(st.lists(st.integers(1, 3), min_size=n_var, max_size=n_var))
    mod_types = draw(st.lists(st.booleans(), min_size=n_mod, max_size=n_mod))
    attrs = [
        draw(
            st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _value(n_mod, n_var), max_size=4)
        )
        for _ in range(n_mod)
    ]
    return var_kinds, var_sizes, mod_types, attrs


def build(description):
    var_kinds, var_sizes, mod_types, attrs = description
    counter = iter(range(1000))
    variables = [
        KINDS[k](jnp.full((size,), float(next(counter))))
        for k, size in zip(var_kinds, var_sizes, strict=False)
    ]
    modules = [(Node if t else Other)() for t in mod_types]

    def make(desc):
        tag, arg = desc
        if tag == "mod":
            return modules[arg]
        if tag == "var":
            return variables[arg]
        if tag == "raw":
            return jnp.full((arg,), float(next(counter)))
        if tag == "static":
            return arg
        if tag == "list":
            return [make(d) for d in arg]
        if tag == "tuple":
            return tuple(make(d) for d in arg)
        return {k: make(d) for k, d in arg.items()}

    for module, module_attrs in zip(modules, attrs, strict=False):
        for name, desc in module_attrs.items():
            setattr(module, name, make(desc))
    return modules[0]


def signature(root):
    """An independent description of a graph: types, values, and who is shared."""
    ids: dict[int, int] = {}

    def sig(x):
        if isinstance(x, (core.Module, core.Variable)):
            if id(x) in ids:
                return ("ref", ids[id(x)])
            ids[id(x)] = len(ids)
            if isinstance(x, core.Variable):
                return (type(x).__name__, tuple(np.asarray(x.value).tolist()))
            return (type(x).__name__, tuple((k, sig(v)) for k, v in vars(x).items()))
        if isinstance(x, (jax.Array, np.ndarray)):
            return ("array", tuple(np.asarray(x).tolist()))
        if isinstance(x, list):
            return ("list", tuple(sig(v) for v in x))
        if isinstance(x, tuple):
            return ("tuple", tuple(sig(v) for v in x))
        if isinstance(x, dict):
            return ("dict", tuple((k, sig(v)) for k, v in x.items()))
        return ("static", x)

    return sig(root)


def objects(root):
    """Every Module and Variable reachable from root, by identity."""
    seen: dict[int, object] = {}

    def visit(x):
        if isinstance(x, (core.Module, core.Variable)):
            if id(x) in seen:
                return
            seen[id(x)] = x
            if isinstance(x, core.Module):
                for v in vars(x).values():
                    visit(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                visit(v)
        elif isinstance(x, dict):
            for v in x.values():
                visit(v)

    visit(root)
    return seen


SETTINGS = settings(max_examples=60, deadline=None)


@SETTINGS
@given(graphs())
def test_split_merge_round_trip_keeps_structure_sharing_and_values(description):
    root = build(description)
    graphdef, state = core.split(root)
    rebuilt = core.merge(graphdef, state)
    assert signature(rebuilt) == signature(root)
    assert not set(objects(rebuilt)) & set(objects(root))  # all new objects
    assert core.graphdef(rebuilt) == graphdef


@SETTINGS
@given(graphs())
def test_round_trip_through_jax_jit(description):
    root = build(description)
    graphdef, state = core.split(root)

    @jax.jit
    def through(graphdef, state):
        obj = core.merge(graphdef, state)
        return core.split(obj)[1]

    out = through(graphdef, state)
    rebuilt = core.merge(graphdef, out)
    assert signature(rebuilt) == signature(root)


@SETTINGS
@given(graphs())
def test_update_writes_every_leaf_and_keeps_identities(description):
    root = build(description)
    before = objects(root)
    graphdef, state = core.split(root)
    core.update(root, jax.tree.map(lambda x: x + 100.0, state))
    assert objects(root).keys() == before.keys()
    for path, leaf in core.state(root).flat_state().items():
        value = leaf.value if isinstance(leaf, core.Variable) else leaf
        assert float(jnp.min(value)) >= 100.0, path


@SETTINGS
@given(graphs(), st.permutations(KINDS))
def test_filtered_split_partitions_each_leaf_exactly_once(description, order):
    root = build(description)
    graphdef, *parts = core.split(root, *order[:2], ...)
    all_paths = set(graphdef.paths)
    seen = [set(p.flat_state()) for p in parts]
    assert set().union(*seen) == all_paths
    assert sum(len(s) for s in seen) == len(all_paths)
    for path in seen[0]:
        assert isinstance(parts[0].flat_state()[path], order[0])
    assert signature(core.merge(graphdef, *parts)) == signature(root)


@SETTINGS
@given(graphs())
def test_clone_equals_and_is_independent(description):
    root = build(description)
    copy = core.clone(root)
    assert signature(copy) == signature(root)
    for leaf in core.flatten(copy).refs:
        if isinstance(leaf, core.Variable):
            leaf.value = leaf.value * 0 - 1
    assert signature(build(description)) == signature(root)
