"""Logical axis names -> PartitionSpecs (no devices needed; the 8-device cases are in
sharding_cases.py, run by test_sharding_devices.py)."""

import threading

import jax
import jax.numpy as jnp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.sharding import PartitionSpec as P

from ramie import core
from ramie.core import _sharding

LOGICAL = ["batch", "embed", "mlp", "heads", "vocab"]
MESH_AXES = ["data", "model", "fsdp"]

names_st = st.lists(st.sampled_from(LOGICAL + [None]), max_size=4)
target_st = st.one_of(
    st.none(),
    st.sampled_from(MESH_AXES),
    st.lists(st.sampled_from(MESH_AXES), min_size=1, max_size=2, unique=True).map(tuple),
)
rules_st = st.lists(st.tuples(st.sampled_from(LOGICAL), target_st), max_size=6)


def _axes(entry):
    return (entry,) if isinstance(entry, str) else tuple(entry or ())


@given(names_st, rules_st)
def test_logical_to_mesh_axes_follows_the_first_usable_rule(names, rules):
    spec = core.logical_to_mesh_axes(names, rules)
    assert len(spec) == len(names)
    used = [a for entry in spec for a in _axes(entry)]
    assert len(used) == len(set(used))  # a mesh axis shards at most one dimension
    taken: set = set()
    expected = []
    for name in names:
        candidates = [t for n, t in rules if n == name and name is not None]
        usable = [t for t in candidates if t is None or not taken.intersection(_axes(t))]
        expected.append(usable[0] if usable else None)
        taken.update(_axes(expected[-1]))
    assert spec == P(*expected)


@given(names_st)
def test_without_rules_the_names_are_the_mesh_axes(names):
    assert core.logical_to_mesh_axes(names) == P(*names)


def test_rules_nest_and_stay_in_their_thread():
    seen = []
    with core.logical_axis_rules([("embed", "data")]):
        with core.logical_axis_rules([("embed", "model")]):
            assert core.logical_to_mesh_axes(("embed",)) == P("model")
            t = threading.Thread(target=lambda: seen.append(core.get_logical_axis_rules()))
            t.start()
            t.join()
        assert core.logical_to_mesh_axes(("embed",)) == P("data")
        # an explicit argument wins over the context
        assert core.logical_to_mesh_axes(("embed",), [("embed", "fsdp")]) == P("fsdp")
    assert core.get_logical_axis_rules() is None and seen == [None]


class Tiny(core.Module):
    def __init__(self):
        init = core.with_partitioning(jax.nn.initializers.zeros, ("embed", "mlp"), note="x")
        self.kernel = core.Param(init(jax.random.key(0), (4, 6)))
        self.bias = core.Param(jnp.zeros(6), sharding_names=("mlp",))
        self.count = core.Variable(jnp.zeros(()))


def test_partition_specs_of_a_module_leaf_by_leaf():
    with core.logical_axis_rules([("embed", None), ("mlp", "model")]):
        specs = core.get_partition_spec(Tiny())
    assert specs == core.State({"kernel": P(None, "model"), "bias": P("model"), "count": P()})
    plain = core.get_partition_spec(core.state(Tiny()))  # no rules: names are mesh axes
    assert plain["kernel"] == P("embed", "mlp")


def test_with_partitioning_and_metadata_keywords_give_the_same_param():
    tiny = Tiny()
    by_keyword = core.Param(jnp.zeros((4, 6)), sharding_names=("embed", "mlp"), note="x")
    assert tiny.kernel.metadata == by_keyword.metadata
    # keywords given to the Variable itself win over the initializer's
    init = core.with_partitioning(jax.nn.initializers.zeros, ("a", "b"))
    p = core.Param(init(jax.random.key(0), (2, 2)), sharding_names=("c", "d"))
    assert p.sharding_names == ("c", "d")
    # wrapping twice keeps the outer names and the inner metadata
    twice = core.with_partitioning(
        core.with_partitioning(jax.nn.initializers.ones, ("a",), k=1), ("z",)
    )
    q = core.Param(twice(jax.random.key(0), (3,)))
    assert q.metadata == {"k": 1, "sharding_names": ("z",)}


def test_older_and_newer_metadata_keys_are_read_too():
    for key in ("sharding", "sharding_metadata", "sharding_names"):
        v = core.Param(jnp.ones((2, 3)), **{key: ("a", None)})
        assert core.sharding_names(v) == ("a", None)
        assert core.get_partition_spec(core.State({"v": v}))["v"] == P("a", None)
    assert core.sharding_names(core.Param(jnp.ones(2))) is None


def test_per_variable_rules_win():
    v = core.Param(jnp.ones((2, 3)), sharding_names=("a", "b"), sharding_rules=(("a", "x"),))
    with core.logical_axis_rules([("a", "y"), ("b", "z")]):
        assert core.get_partition_spec(core.State({"v": v}))["v"] == P("x", None)


def test_rank_mismatch_names_the_path_and_both_sides():
    s = core.State({"enc": {"w": core.Param(jnp.ones((2, 3)), sharding_names=("a",))}})
    with pytest.raises(ValueError) as info:
        core.get_partition_spec(s)
    assert str(info.value) == _sharding.SHARDING_RANK.format(
        path="enc/w", names=("a",), count=1, shape=(2, 3), ndim=2
    )


def test_bad_rule_is_refused():
    with pytest.raises(ValueError) as info:
        core.logical_to_mesh_axes(("a",), [("a", "x", "y")])
    assert str(info.value) == _sharding.BAD_AXIS_RULE.format(rule=("a", "x", "y"))
    with pytest.raises(ValueError):
        with core.logical_axis_rules(["embed"]):
            pass


def test_shardings_are_a_prefix_tree_of_the_state_for_jax_jit():
    mesh = jax.make_mesh((1,), ("model",))
    state = core.state(Tiny())
    shardings = core.get_named_sharding(state, mesh, rules=[("mlp", "model")])
    out = jax.jit(lambda s: jax.tree.map(lambda x: x + 1, s), out_shardings=shardings)(state)
    assert out["kernel"].value.sharding.spec == P(None, "model")
    assert out["kernel"].sharding_names == ("embed", "mlp")


def test_constraint_without_a_mesh_is_the_identity():
    x = jnp.arange(6.0).reshape(2, 3)
    assert core.with_sharding_constraint(x, ("batch", None)) is x
    assert not core.eager_sharding_enabled()
