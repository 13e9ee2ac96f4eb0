"""One object passed through several arguments must get one axis/sharding (issue 11)."""

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from transform_models import Linear

from ramie import core
from ramie.transforms import Carry, StateAxes, TransformArgumentError, jit, scan, shard_map, vmap
from ramie.transforms import _errors as terrors


def _stacked():
    return vmap(lambda k: Linear(2, 2, rngs=core.Rngs(k)))(jnp.arange(3))


def _message(transform, option, what, first, second):
    return terrors.ALIASED_SPECS.format(
        transform=transform, option=option, what=what, first=first, second=second
    )


def _assert_same_object_error(info, transform, option, first, second):
    assert str(info.value) == _message(
        transform,
        option,
        "the same Linear",
        f"args[0] with {option} {first!r}",
        f"args[1] with {option} {second!r}",
    )


def test_vmap_of_one_module_with_two_axes_is_an_error_naming_both():
    m = _stacked()
    with pytest.raises(TransformArgumentError) as info:
        vmap(lambda a, b: a.kernel.value, in_axes=(0, 1))(m, m)
    _assert_same_object_error(info, "vmap", "in_axes", 0, 1)


def test_vmap_of_a_module_and_its_own_variable_with_different_axes():
    m = _stacked()
    with pytest.raises(TransformArgumentError) as info:
        vmap(lambda a, k: a.kernel.value + k.value, in_axes=(0, None))(m, m.kernel)
    assert str(info.value) == _message(
        "vmap",
        "in_axes",
        "the Param at 'args[0]/kernel' (also 'args[1]')",
        "args[0] gives it 0",
        "args[1] gives it None",
    )


def test_aliasing_inside_containers_and_through_state_axes():
    m = _stacked()
    with pytest.raises(TransformArgumentError, match=r"args\[0\]\['x'\] with in_axes 0, "):
        vmap(lambda a, b: 0.0, in_axes=(0, None))({"x": m}, [1, m])
    axes = StateAxes({core.Param: 0, ...: None})
    with pytest.raises(TransformArgumentError, match="'args\\[0\\]/bias' \\(also 'args\\[1\\]'\\)"):
        vmap(lambda a, b: 0.0, in_axes=(axes, None))(m, m.bias)


def test_consistent_aliasing_is_fine():
    m = _stacked()
    out = vmap(lambda a, b, k: a.kernel.value + b.kernel.value + k.value, in_axes=(0, 0, 0))(
        m, m, m.kernel
    )
    assert jnp.allclose(out, 3 * m.kernel.value)
    axes = StateAxes({...: 0})
    out = vmap(lambda a, b: a.bias.value - b.bias.value, in_axes=(axes, 0))(m, m)
    assert jnp.allclose(out, 0.0)


def test_scan_of_one_module_as_carry_and_scanned_is_an_error():
    m = _stacked()
    with pytest.raises(TransformArgumentError, match="the same Linear .* args\\[1\\] with "):
        scan(lambda c, layer: c, in_axes=(Carry, 0), out_axes=Carry)(m, m)


def test_jit_with_two_shardings_for_one_object_is_an_error():
    mesh = jax.make_mesh((8,), ("x",), axis_types=(jax.sharding.AxisType.Explicit,))
    row, rep = NamedSharding(mesh, P("x")), NamedSharding(mesh, P())
    m = Linear(8, 8, rngs=core.Rngs(0))
    f = jit(lambda a, b: a.kernel.value.sum(), in_shardings=(row, rep))
    with pytest.raises(TransformArgumentError) as info:
        f(m, m)
    _assert_same_object_error(info, "jit", "in_shardings", row, rep)
    with pytest.raises(TransformArgumentError, match="the Param at 'args\\[0\\]/kernel'"):
        f(m, m.kernel)
    assert float(jit(lambda a, b: a.kernel.value.sum(), in_shardings=(rep, rep))(m, m)) == float(
        m.kernel.value.sum()
    )


def test_shard_map_with_two_specs_for_one_object_is_an_error():
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    m = Linear(8, 8, rngs=core.Rngs(0))
    f = shard_map(lambda a, b: a.bias.value, mesh=mesh, in_specs=(P(), P("data")), out_specs=P())
    with pytest.raises(TransformArgumentError) as info:
        f(m, m)
    _assert_same_object_error(info, "shard_map", "in_specs", P(), P("data"))
