"""Plain JAX transformations meeting Modules explain themselves (issue 11)."""

import jax
import jax.numpy as jnp
import pytest

from ramie import core


class M(core.Module):
    def __init__(self):
        self.w = core.Param(jnp.ones(2))

    def __call__(self, x):
        return x * self.w


def test_a_tracer_stored_on_a_captured_module_inside_jax_jit_raises_at_the_assignment():
    m = M()

    def f(x):
        m.h = x * 2  # m was made outside and captured
        return x

    with pytest.raises(core.ModuleInJaxError) as info:
        jax.jit(f)(jnp.ones(2))
    assert str(info.value) == core._errors.TRACER_ON_CAPTURED_MODULE.format(type_name="M", name="h")
    assert "nn.jit" in str(info.value) and "nn.split" in str(info.value)
    assert "h" not in vars(m)


def test_modules_made_or_merged_inside_the_transformation_may_hold_tracers():
    graphdef, state = core.split(M())

    @jax.jit
    def f(state, x):
        inside = M()
        inside.h = x  # made inside: fine
        merged = core.merge(graphdef, state)
        merged.extra = x * 3  # built from the State inside: fine
        return inside.h + merged.extra + merged(x)

    assert float(f(state, jnp.ones(2)).sum()) == 2 * (1 + 3 + 1)


def test_concrete_values_on_captured_modules_are_fine_inside_jax_jit():
    m = M()

    def f(x):
        m.note = "seen"  # a static, not a tracer
        return x

    jax.jit(f)(jnp.ones(2))
    assert m.note == "seen"


@pytest.mark.parametrize(
    "call",
    [
        lambda m: jax.jit(lambda m, x: m(x))(m, jnp.ones(2)),
        lambda m: jax.grad(lambda m: m(jnp.ones(2)).sum())(m).w.value,
        lambda m: jax.vmap(lambda m, x: m(x), in_axes=(None, 0))(m, jnp.ones((3, 2)))[0],
        lambda m: jax.lax.cond(True, lambda m: m(jnp.ones(2)), lambda m: -m(jnp.ones(2)), m),
        lambda m: jax.lax.scan(lambda c, x: (c, c(x)), m, jnp.ones((1, 2)))[1][0],
    ],
    ids=["jit", "grad", "vmap", "cond", "scan"],
)
def test_a_module_given_to_jax_as_a_value_is_a_pytree(call):
    # before (issue 11): ModuleInJaxError; since issue 14 Modules are pytrees, as in NNX 0.12
    assert call(M()).tolist() == [1.0, 1.0]


def test_a_module_used_as_one_array_names_the_type_and_the_fix():
    with pytest.raises(core.ModuleInJaxError) as info:
        jax.typeof(M())
    assert str(info.value) == core._errors.MODULE_AS_JAX_VALUE.format(type_name="M")
    assert "jax.tree.map" in str(info.value) and "nn.state" in str(info.value)


def test_changes_inside_plain_jax_jit_come_back_only_in_the_outputs():
    m = M()

    @jax.jit
    def f(m):
        m.w.value = m.w.value * 3
        m.h = m.w.value  # a tracer on the rebuilt copy: allowed
        return m

    out = f(m)
    assert m.w.value.tolist() == [1.0, 1.0] and "h" not in vars(m)
    assert out.w.value.tolist() == [3.0, 3.0] and out.h.tolist() == [3.0, 3.0]
    assert out is not m and out.w is not m.w


def test_modules_captured_or_static_in_jax_jit_still_work():
    m = M()
    assert float(jax.jit(lambda x: m(x).sum())(jnp.ones(2))) == 2.0
    assert float(jax.jit(lambda m, x: m(x).sum(), static_argnums=0)(m, jnp.ones(2))) == 2.0
