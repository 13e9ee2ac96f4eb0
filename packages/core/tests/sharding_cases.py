"""Sharding on 8 CPU devices; run by test_sharding_devices.py in a subprocess with
XLA_FLAGS set (jax reads it once, when it starts)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from ramie import core

RULES = (("embed", "data"), ("mlp", "model"), ("batch", "data"))


class Block(core.Module):
    def __init__(self, rngs: core.Rngs):
        init = core.with_partitioning(jax.nn.initializers.lecun_normal(), ("embed", "mlp"))
        self.up = core.Param(init(rngs.params(), (16, 8)))
        self.down = core.Param(
            jax.random.normal(rngs.params(), (8, 16)), sharding_names=("mlp", "embed")
        )
        self.bias = core.Param(jnp.zeros((16,)))
        self.scale = core.Param(jnp.ones((16,)), sharding=("embed",))  # the older key

    def __call__(self, x):
        h = core.with_sharding_constraint(x @ self.up, ("batch", "mlp"))
        return h @ self.down + self.bias


def _mesh(kind=AxisType.Auto):
    return jax.make_mesh((4, 2), ("data", "model"), axis_types=(kind, kind))


def test_eight_devices():
    assert jax.device_count() == 8


def test_sharded_init_puts_only_a_shard_on_each_device():
    mesh = _mesh()
    model = core.sharded_init(lambda: Block(core.Rngs(0)), mesh, rules=RULES)
    expected = {"up": (4, 4), "down": (4, 4), "bias": (16,), "scale": (4,)}
    for name, shard_shape in expected.items():
        value = getattr(model, name).value
        shards = value.addressable_shards
        assert len(shards) == 8
        assert {s.data.shape for s in shards} == {shard_shape}, name
    assert model.up.value.sharding.spec == P("data", "model")
    assert model.down.value.sharding.spec == P("model", "data")
    assert model.bias.value.sharding.spec == P()
    # the same numbers as building it on one device
    plain = Block(core.Rngs(0))
    for name in expected:
        np.testing.assert_array_equal(getattr(model, name).value, getattr(plain, name).value)
    # the Variables keep their metadata
    assert model.up.sharding_names == ("embed", "mlp")


def test_named_shardings_match_the_placed_values_leaf_by_leaf():
    mesh = _mesh()
    model = core.sharded_init(lambda: Block(core.Rngs(0)), mesh, rules=RULES)
    with core.logical_axis_rules(RULES):
        shardings = core.get_named_sharding(core.state(model), mesh)
    for path, variable in core.state(model).flat_state().items():
        node = shardings
        for k in path:
            node = node[k]
        assert variable.value.sharding.is_equivalent_to(node, variable.value.ndim), path


def test_abstract_model_carries_shardings_and_computes_nothing():
    mesh = _mesh()
    graphdef, abstract = core.get_abstract_model(lambda: Block(core.Rngs(0)), mesh, rules=RULES)
    up = abstract["up"].value
    assert isinstance(up, jax.ShapeDtypeStruct)
    assert up.shape == (16, 8) and up.sharding == NamedSharding(mesh, P("data", "model"))
    assert abstract["up"].sharding_names == ("embed", "mlp")
    assert abstract["bias"].value.sharding.spec == P()
    assert isinstance(graphdef, core.GraphDef)


def test_a_sharded_model_runs_and_the_constraint_shards_activations():
    mesh = _mesh()
    model = core.sharded_init(lambda: Block(core.Rngs(0)), mesh, rules=RULES)
    plain = Block(core.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (8, 16))

    def hidden(params, x):
        return core.with_sharding_constraint(x @ params, ("batch", "mlp"))

    with jax.set_mesh(mesh), core.logical_axis_rules(RULES):
        h = jax.jit(hidden)(model.up.value, x)
        y = jax.jit(lambda m, x: core.merge(m[0], m[1])(x))(core.split(model), x)
    assert h.sharding.spec == P("data", "model")
    np.testing.assert_allclose(y, plain(x), rtol=1e-5, atol=1e-5)


def test_with_sharding_constraint_reshards_on_explicit_axes():
    mesh = _mesh(AxisType.Explicit)
    with jax.set_mesh(mesh):
        y = core.with_sharding_constraint(jnp.ones((8, 4)), ("batch", None), rules=RULES)
    assert y.sharding.spec == P("data", None)


def test_eager_sharding_places_values_as_they_are_created():
    mesh = _mesh()
    init = core.with_partitioning(jax.nn.initializers.ones, ("embed", "mlp"))
    with jax.set_mesh(mesh), core.logical_axis_rules(RULES), core.use_eager_sharding():
        p = core.Param(init(jax.random.key(0), (8, 4)))
    assert p.value.sharding.spec == P("data", "model")
    assert {s.data.shape for s in p.value.addressable_shards} == {(2, 2)}
    with jax.set_mesh(mesh), core.logical_axis_rules(RULES):  # off by default: not sharded
        q = core.Param(init(jax.random.key(0), (8, 4)))
    assert q.value.sharding.is_fully_replicated


def test_with_partitioning_given_a_mesh_places_at_once():
    mesh = _mesh()
    init = core.with_partitioning(jax.nn.initializers.ones, ("data", None), mesh=mesh)
    p = core.Param(init(jax.random.key(0), (8, 2)))
    assert p.value.sharding == NamedSharding(mesh, P("data", None))


def test_unknown_mesh_axis_names_the_variable():
    mesh = _mesh()
    s = core.State({"layer": {"w": core.Param(jnp.ones((4, 2)), sharding_names=("rows", None))}})
    with pytest.raises(ValueError) as info:
        core.get_named_sharding(s, mesh)
    assert str(info.value) == core._sharding.SHARDING_UNKNOWN_AXIS.format(
        path="layer/w", axis="rows", spec=P("rows", None), mesh_axes=("data", "model")
    )
