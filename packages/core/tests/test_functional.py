"""functional(): a Module as a pure function f(state, *args) -> (out, new_state)."""

import jax
import jax.numpy as jnp
import numpy as np

from ramie import core


class Count(core.Variable):
    pass


class Model(core.Module):
    def __init__(self, din, dout, *, rngs):
        self.w = core.Param(jax.random.normal(rngs.params(), (din, dout)))
        self.b = core.Param(jnp.arange(dout, dtype=jnp.float32))
        self.calls = Count(jnp.array(0, jnp.int32))
        self.total = core.BatchStat(jnp.zeros((dout,)))
        self.scale = 2.0

    def __call__(self, x):
        self.calls += 1
        y = x @ self.w + self.b
        self.total.value = self.total.value + y.reshape(-1, y.shape[-1]).sum(0)
        return y

    def double(self, x, *, extra=0.0):
        return self.scale * self(x) + extra


def make():
    return Model(3, 2, rngs=core.Rngs(0))


def values(state: core.State) -> dict:
    return {p: np.asarray(v.value) for p, v in state.flat_state().items()}


def test_functional_gives_state_and_pure_call():
    model = make()
    f = core.functional(model)
    assert isinstance(f, core.Functional)
    assert type(f.state) is core.State
    assert set(f.state.paths()) == {("w",), ("b",), ("calls",), ("total",)}
    x = jnp.ones((4, 3))
    out, new_state = f(f.state, x)
    np.testing.assert_allclose(out, x @ model.w.value + model.b.value, rtol=1e-6)
    assert type(new_state) is core.State
    assert set(new_state.paths()) == set(f.state.paths())
    assert type(new_state.calls) is Count
    assert int(new_state.calls.value) == 1
    np.testing.assert_allclose(new_state.total.value, np.asarray(out).sum(0), rtol=1e-6)


def test_call_does_not_mutate_the_model_or_the_state():
    model = make()
    f = core.functional(model)
    before_model = values(core.state(model))
    before_state = values(f.state)
    state_leaves = f.state.leaves()
    _, new_state = f(f.state, jnp.ones((4, 3)))
    _, newer = f(new_state, jnp.ones((4, 3)))
    for path, v in values(core.state(model)).items():
        np.testing.assert_array_equal(v, before_model[path])
    for path, v in values(f.state).items():
        np.testing.assert_array_equal(v, before_state[path])
    assert f.state.leaves() == state_leaves  # same Variable objects, untouched
    assert int(new_state.calls.value) == 1  # the input of the second call is untouched too
    assert int(newer.calls.value) == 2
    assert int(model.calls.value) == 0
    # the functional keeps working after the model changes
    model.calls.value = jnp.array(100, jnp.int32)
    _, again = f(f.state, jnp.ones((4, 3)))
    assert int(again.calls.value) == 1


def test_counter_in_new_state_advances():
    f = core.functional(make())
    state = f.state
    step = jax.jit(f)
    for i in range(1, 4):
        _, state = step(state, jnp.ones((1, 3)))
        assert int(state.calls.value) == i
    assert int(f.state.calls.value) == 0


def test_works_under_jit():
    model = make()
    f = core.functional(model)
    x = jnp.ones((4, 3))
    eager_out, eager_state = f(f.state, x)
    jit_out, jit_state = jax.jit(f)(f.state, x)
    np.testing.assert_allclose(jit_out, eager_out, rtol=1e-6)
    assert type(jit_state.calls) is Count
    for path, v in values(jit_state).items():
        np.testing.assert_allclose(v, values(eager_state)[path], rtol=1e-6)


def test_grad_with_respect_to_params_only():
    model = make()
    f = core.functional(model)
    params, rest = f.state.filter(core.Param, ...)
    assert set(params.paths()) == {("w",), ("b",)}
    x = jnp.arange(12.0).reshape(4, 3)

    def loss(params, rest, x):
        new = core.State.merge(params, rest)
        out, _ = f(new, x)
        return out.sum()

    grads = jax.grad(loss)(params, rest, x)
    assert type(grads) is core.State
    assert set(grads.paths()) == {("w",), ("b",)}
    assert type(grads.w) is core.Param
    # d/dw sum(x @ w + b) = x.sum(0)[:, None] broadcast over outputs; d/db = batch size
    np.testing.assert_allclose(grads.w.value, np.repeat(np.asarray(x).sum(0)[:, None], 2, 1))
    np.testing.assert_allclose(grads.b.value, np.full(2, 4.0))

    # jit(grad) agrees
    grads_jit = jax.jit(jax.grad(loss))(params, rest, x)
    np.testing.assert_allclose(grads_jit.w.value, grads.w.value)


def test_value_and_grad_with_aux_new_state():
    f = core.functional(make())
    params, rest = f.state.filter(core.Param, ...)

    def loss(params, rest, x):
        out, new_state = f(core.State.merge(params, rest), x)
        return (out**2).mean(), new_state

    (value, new_state), grads = jax.value_and_grad(loss, has_aux=True)(
        params, rest, jnp.ones((2, 3))
    )
    assert value.shape == ()
    assert int(new_state.calls.value) == 1
    assert set(grads.paths()) == {("w",), ("b",)}


def test_works_under_vmap_over_a_batch():
    model = make()
    f = core.functional(model)
    xs = jnp.arange(15.0).reshape(5, 3)
    outs, new_states = jax.vmap(f, in_axes=(None, 0))(f.state, xs)
    assert outs.shape == (5, 2)
    np.testing.assert_allclose(outs, xs @ model.w.value + model.b.value, rtol=1e-5)
    assert new_states.calls.value.shape == (5,)
    np.testing.assert_array_equal(new_states.calls.value, np.ones(5))
    assert type(new_states.calls) is Count


def test_vmap_over_stacked_states():
    f = core.functional(make())
    stacked = jax.tree.map(lambda x: jnp.stack([x, 2 * x]), f.state)
    outs, _ = jax.vmap(f, in_axes=(0, None))(stacked, jnp.ones((1, 3)))
    assert outs.shape == (2, 1, 2)
    np.testing.assert_allclose(outs[1], 2 * outs[0], rtol=1e-6)


def test_apply_calls_another_method():
    model = make()
    f = core.functional(model)
    x = jnp.ones((4, 3))
    out, _ = f(f.state, x)
    doubled, new_state = f.apply("double")(f.state, x)
    np.testing.assert_allclose(doubled, 2 * out, rtol=1e-6)
    assert int(new_state.calls.value) == 1
    shifted, _ = f.apply("double")(f.state, x, extra=1.0)
    np.testing.assert_allclose(shifted, 2 * out + 1.0, rtol=1e-6)
    jitted, jit_state = jax.jit(f.apply("double"))(f.state, x)
    np.testing.assert_allclose(jitted, doubled, rtol=1e-6)
    assert int(jit_state.calls.value) == 1
    via_kw, _ = f(f.state, x, method="double")
    np.testing.assert_allclose(via_kw, doubled, rtol=1e-6)


def test_build_returns_a_module():
    model = make()
    f = core.functional(model)
    built = f.build()
    assert type(built) is Model
    assert built is not model
    assert built.w is not model.w
    assert built.scale == 2.0
    np.testing.assert_array_equal(built.w.value, model.w.value)
    # building from a later state
    _, new_state = f(f.state, jnp.ones((1, 3)))
    later = f.build(new_state)
    assert int(later.calls.value) == 1
    assert int(built.calls.value) == 0
    # the built module is a normal, mutable module
    built(jnp.ones((1, 3)))
    assert int(built.calls.value) == 1
    assert int(f.state.calls.value) == 0


def test_functional_with_rngs_advances_the_count_in_new_state():
    class Noisy(core.Module):
        def __init__(self):
            self.rngs = core.Rngs(noise=0)

        def __call__(self, x):
            return x + jax.random.normal(self.rngs.noise(), x.shape)

    f = core.functional(Noisy())
    y1, s1 = jax.jit(f)(f.state, jnp.zeros(3))
    y2, s2 = jax.jit(f)(s1, jnp.zeros(3))
    assert int(s1.rngs.noise.count.value) == 1
    assert int(s2.rngs.noise.count.value) == 2
    assert not np.allclose(y1, y2)
    y1_again, _ = f(f.state, jnp.zeros(3))
    np.testing.assert_allclose(y1_again, y1, rtol=1e-6)
