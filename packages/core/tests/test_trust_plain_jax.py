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
        lambda m: jax.vmap(lambda m, x: x, in_axes=(0, 0))(m, jnp.ones((3, 2))),
        lambda m: jax.lax.cond(True, lambda m: 1.0, lambda m: 2.0, m),
    ],
)
def test_a_module_given_to_jax_as_a_value_names_the_type_and_the_fix(call):
    with pytest.raises(core.ModuleInJaxError) as info:
        call(M())
    assert str(info.value) == core._errors.MODULE_AS_JAX_VALUE.format(type_name="M")
    assert "nn.jit" in str(info.value) and "nn.split" in str(info.value)


def test_a_module_passed_to_jax_jit_shows_ramies_explanation_in_the_chain():
    with pytest.raises(TypeError) as info:
        jax.jit(lambda m, x: m(x))(M(), jnp.ones(2))
    cause = info.value.__context__ or info.value.__cause__
    assert isinstance(cause, core.ModuleInJaxError)
    assert str(cause) == core._errors.MODULE_AS_JAX_VALUE.format(type_name="M")
