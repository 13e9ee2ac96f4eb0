"""NNX spellings of grad/value_and_grad/custom_vjp, DiffState, jit stages, (jit_/cached_)partial."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core
from ramie.transforms import (
    DiffState,
    TransformArgumentError,
    cached_partial,
    custom_vjp,
    grad,
    jit,
    jit_partial,
    value_and_grad,
)


class Affine(core.Module):
    def __init__(self, w=2.0, b=1.0):
        self.w = core.Param(jnp.array(w))
        self.b = core.Param(jnp.array(b))
        self.calls = core.BatchStat(jnp.array(0))

    def __call__(self, x):
        self.calls.value += 1
        return self.w.value * x + self.b.value


# -- decorator factories -----------------------------------------------------------
def test_grad_as_a_decorator_factory_with_argnums():
    @grad(argnums=1)
    def loss(x, m):
        return m(x) ** 2

    m = Affine()
    g = loss(3.0, m)
    # d/dw (w x + b)^2 = 2 (w x + b) x = 2*7*3, d/db = 2*7
    assert float(g["w"].value) == 42.0 and float(g["b"].value) == 14.0
    assert int(m.calls.value) == 1  # the BatchStat mutation came back


def test_value_and_grad_as_a_decorator_factory_with_has_aux():
    @value_and_grad(has_aux=True)
    def loss(m, x):
        y = m(x)
        return y**2, {"y": y}

    (value, aux), g = loss(Affine(), 1.0)
    assert float(value) == 9.0 and float(aux["y"]) == 3.0
    assert float(g["w"].value) == 6.0


def test_grad_factory_without_arguments_is_plain_grad():
    assert float(grad()(lambda m: m.w.value**3)(Affine())["w"].value) == 12.0


def test_custom_vjp_as_a_decorator_factory_with_nondiff_argnums():
    @custom_vjp(nondiff_argnums=(1,))
    def scaled(m, k):
        return m.w.value * k

    def fwd(m, k):
        return scaled(m, k), k

    def bwd(k, g):
        return (core.State({"w": core.Param(100.0 * g), "b": core.Param(0.0 * g)}),)

    scaled.defvjp(fwd, bwd)
    assert float(grad(lambda m: scaled(m, 3.0))(Affine())["w"].value) == 100.0
    assert float(scaled(Affine(), 3.0)) == 6.0


# -- DiffState ---------------------------------------------------------------------
def test_diff_state_differentiates_only_what_its_filter_selects():
    g = grad(lambda m, x: m(x) ** 2, argnums=DiffState(0, core.PathContains("b")))(Affine(), 3.0)
    assert list(g.keys()) == ["b"] and float(g["b"].value) == 14.0


def test_diff_states_and_ints_mixed_give_one_gradient_per_argnum():
    def loss(m1, m2):
        return m1.w.value * m2.w.value + m1.b.value * m2.b.value

    g1, g2 = grad(loss, argnums=(DiffState(0, core.PathContains("w")), 1))(
        Affine(2.0, 3.0), Affine(5.0, 7.0)
    )
    assert sorted(g1.keys()) == ["w"] and float(g1["w"].value) == 5.0
    assert sorted(g2.keys()) == ["b", "w"]
    assert (float(g2["w"].value), float(g2["b"].value)) == (2.0, 3.0)


def test_diff_state_with_batch_stats_differentiates_them():
    class Scaled(core.Module):
        def __init__(self):
            self.s = core.BatchStat(jnp.array(4.0))

    g = grad(lambda m: m.s.value**2, argnums=DiffState(0, core.BatchStat))(Scaled())
    assert float(g["s"].value) == 8.0
    assert type(g["s"]) is core.BatchStat


def test_diff_state_is_a_named_pair():
    d = DiffState(2, core.Param)
    assert d.argnum == 2 and d.filter is core.Param and tuple(d) == (2, core.Param)


# -- jit stages ---------------------------------------------------------------------
def _step(m, x):
    y = m(x)
    return (y * 2).sum()


def test_lower_compile_runs_and_writes_mutations_back():
    f = jit(_step)
    m = Affine()
    lowered = f.lower(m, jnp.ones(3))
    assert "stablehlo" in lowered.as_text() or "func" in lowered.as_text()
    compiled = lowered.compile()
    assert float(compiled(m, jnp.ones(3))) == 18.0  # 2 * 3 * (2 + 1)
    assert float(compiled(m, jnp.ones(3))) == 18.0
    assert int(m.calls.value) == 2  # lowering ran nothing; the two calls counted
    assert int(f(m, jnp.ones(3))) == 18 and int(m.calls.value) == 3


def test_compiled_refuses_arguments_of_another_structure():
    f = jit(_step)
    compiled = f.lower(Affine(), jnp.ones(3)).compile()

    class Other(core.Module):
        def __init__(self):
            self.w = core.Param(jnp.array(1.0))

        def __call__(self, x):
            return self.w.value * x

    with pytest.raises(TransformArgumentError, match=r"_step\.lower\(\.\.\.\)\.compile\(\)"):
        compiled(Other(), jnp.ones(3))


def test_trace_gives_the_jaxpr_and_lowers():
    f = jit(_step)
    m = Affine()
    traced = f.trace(m, jnp.ones(4))
    assert traced.jaxpr.out_avals[1].shape == ()  # (new values, payload): payload is a scalar
    assert int(m.calls.value) == 0
    assert float(traced.lower().compile()(m, jnp.ones(4))) == 24.0
    assert int(m.calls.value) == 1


def test_eval_shape_of_a_jitted_function_builds_objects_abstractly():
    f = jit(lambda n: [Affine(float(k)) for k in range(n)], static_argnums=0)
    out = f.eval_shape(2)
    assert [type(o) for o in out] == [Affine, Affine]
    w = out[0].w.value
    assert type(w) is jax.ShapeDtypeStruct and (w.shape, w.dtype) == ((), jnp.float32)
    m = Affine()
    assert f.eval_shape(3)[2].calls.value.dtype == jnp.int32
    shapes = jit(_step).eval_shape(m, jnp.ones(5))
    assert shapes == jax.ShapeDtypeStruct((), jnp.float32) and int(m.calls.value) == 0


def test_lower_with_static_and_donated_arguments():
    f = jit(lambda m, x, scale: m(x) * scale, static_argnames="scale", donate_argnums=1)
    m = Affine()
    compiled = f.lower(m, jnp.ones(2), scale=3.0).compile()
    np.testing.assert_allclose(compiled(m, jnp.ones(2), scale=3.0), [9.0, 9.0])
    with pytest.raises(TransformArgumentError, match="another structure"):
        compiled(m, jnp.ones(2), scale=4.0)  # another static value: another compilation


# -- cached_partial / jit_partial ---------------------------------------------------
def test_cached_partial_binds_objects_by_reference():
    @jit
    def train_step(m, x):
        return m(x)

    m = Affine()
    step = cached_partial(train_step, m)
    assert step.__name__ == "train_step"
    assert float(step(1.0)) == 3.0 and float(step(2.0)) == 5.0
    assert int(m.calls.value) == 2
    m.w.value = jnp.array(10.0)  # later changes to the bound object are seen
    assert float(step(1.0)) == 11.0


def test_jit_partial_jits_and_binds():
    m = Affine()
    step = jit_partial(lambda m, x, k: m(x) * k, m, static_argnums=2)
    assert float(step(1.0, 2)) == 6.0 and int(m.calls.value) == 1
