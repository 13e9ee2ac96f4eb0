"""scan over ramie objects: the seed's scan over layers, carries, axes and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from transform_models import MLP, BatchNorm, Linear

from ramie import core
from ramie.transforms import Carry, CarryError, TransformArgumentError, jit, scan, vmap
from ramie.transforms import _errors as terrors


def _stack(n=5, rngs_seed=0):
    @vmap(in_axes=0, out_axes=0)
    def create(key):
        return MLP(10, 32, 10, rngs=core.Rngs(key))

    return create(jax.random.split(jax.random.key(rngs_seed), n))


def test_seed_scan_over_a_vmapped_stack_of_mlps():
    model = _stack()
    counts = np.asarray(model.dropout.rngs.default.count.value)

    @scan(in_axes=(0, Carry), out_axes=Carry)
    def forward(model, x):
        return model(x)

    x = jnp.ones((3, 10))
    y = forward(model, x)
    assert y.shape == (3, 10)
    # Each layer's BatchNorm statistics and RNG counter were updated slice by slice.
    assert model.bn.mean.value.shape == (5, 32)
    assert not np.allclose(model.bn.mean.value[0], model.bn.mean.value[1])
    np.testing.assert_array_equal(model.dropout.rngs.default.count.value, counts + 1)
    # Same result as applying the layers one by one (without dropout: with it, the
    # BatchNorm of a 3-example batch amplifies float rounding across 5 layers).
    model, model2 = _stack(), _stack()
    model.dropout.deterministic = model2.dropout.deterministic = True
    h = x
    for i in range(5):
        layer = core.merge(*_slice(model2, i))
        h = layer(h)
    np.testing.assert_allclose(forward(model, x), h, rtol=1e-4, atol=1e-5)


def _slice(stack, i):
    graphdef, state = core.split(stack)
    return graphdef, jax.tree.map(lambda v: v[i], state)


def test_carry_and_stacked_outputs_reverse_and_length():
    @scan(in_axes=(Carry, 0), out_axes=(Carry, 0))
    def cumsum(total, x):
        total = total + x
        return total, total

    total, partial = cumsum(jnp.array(0.0), jnp.arange(1.0, 5.0))
    assert float(total) == 10.0
    np.testing.assert_array_equal(partial, [1, 3, 6, 10])
    _, rev = scan(cumsum.__wrapped__, reverse=True)(jnp.array(0.0), jnp.arange(1.0, 5.0))
    np.testing.assert_array_equal(rev, [10, 9, 7, 4])

    @scan(in_axes=(Carry,), out_axes=Carry, length=6, unroll=2)
    def double(x):
        return x * 2

    assert float(double(jnp.array(1.0))) == 64.0


def test_broadcast_object_state_is_carried_rng_advances_each_iteration():
    rngs = core.Rngs(0)

    @scan(in_axes=(None, 0), out_axes=0)
    def draw(rngs, x):
        return x + jax.random.uniform(rngs.default())

    out = draw(rngs, jnp.zeros(4))
    assert int(rngs.default.count.value) == 4
    assert len(set(np.asarray(out).tolist())) == 4


def test_object_as_carry_updates_in_place():
    bn = BatchNorm(2)
    xs = jax.random.normal(jax.random.key(0), (3, 8, 2))

    @scan(in_axes=(Carry, 0), out_axes=(Carry, 0))
    def step(bn, x):
        return bn, bn(x).sum()

    out_bn, sums = step(bn, xs)
    assert out_bn is bn and sums.shape == (3,)
    want = jnp.zeros(2)
    for x in xs:
        want = 0.9 * want + 0.1 * x.mean(0)
    np.testing.assert_allclose(bn.mean.value, want, rtol=1e-5)


def test_scan_over_a_non_leading_axis():
    stack = Linear(2, 3, rngs=core.Rngs(0))
    stack.kernel.value = jnp.ones((2, 3, 4))  # four layers along the last axis
    stack.bias.value = jnp.zeros((3, 4))

    @scan(in_axes=(-1, Carry), out_axes=(Carry, 1))
    def f(layer, x):
        y = x @ layer.kernel.value[:, :2] + layer.bias.value[:2]
        return y, y.sum(0)

    x, ys = f(stack, jnp.ones((5, 2)))
    assert x.shape == (5, 2) and ys.shape == (2, 4)
    assert stack.kernel.value.shape == (2, 3, 4)


def test_carry_that_changes_shape_names_path_and_shapes():
    @scan(in_axes=(Carry, 0), out_axes=Carry)
    def grow(c, x):
        return {"h": jnp.concatenate([c["h"], x[None]])}

    with pytest.raises(CarryError) as info:
        grow({"h": jnp.zeros(2)}, jnp.ones(3))
    message = str(info.value)
    assert "'args[0]['h']': float32[2] -> float32[3]" in message
    assert "A carry must keep the same structure, shapes and dtypes" in message

    @scan(in_axes=(Carry, 0), out_axes=Carry)
    def retype(c, x):
        return c.astype(jnp.int32)

    with pytest.raises(CarryError, match=r"float32\[\] -> int32\[\]"):
        retype(jnp.array(0.0), jnp.ones(3))


def test_object_state_that_changes_shape_in_the_carry_is_named():
    class Acc(core.Module):
        def __init__(self):
            self.h = core.Variable(jnp.zeros(2))

    @scan(in_axes=(Carry, 0), out_axes=Carry)
    def bad(acc, x):
        acc.h.value = jnp.zeros(3)
        return acc

    with pytest.raises(CarryError) as info:
        bad(Acc(), jnp.ones(2))
    assert "'args[0]/h': float32[2] -> float32[3]" in str(info.value)


def test_carry_argument_errors():
    with pytest.raises(TransformArgumentError) as info:
        scan(lambda a, b: a, in_axes=(Carry, Carry), out_axes=Carry)(1.0, 2.0)
    assert str(info.value) == terrors.NO_CARRY.format(count=2, in_axes=(Carry, Carry))
    with pytest.raises(TransformArgumentError, match="in_axes has 2 entries"):
        scan(lambda a: a, in_axes=(Carry, 0))(1.0)


def test_jit_of_grad_of_vmap_of_scan():
    stack = vmap(lambda k: Linear(3, 3, rngs=core.Rngs(k)))(jnp.arange(4))

    @scan(in_axes=(0, Carry), out_axes=Carry)
    def forward(layer, x):
        return jnp.tanh(layer(x))

    def loss(stack, xs):
        per_example = vmap(lambda x: forward(stack, x).sum(), in_axes=0)(xs)
        return per_example.mean()

    from ramie.transforms import grad

    g = jit(lambda s, xs: grad(loss)(s, xs))(stack, jnp.ones((2, 5, 3)))
    assert g["kernel"].value.shape == (4, 3, 3)
    eps = 1e-3
    kernel = stack.kernel.value
    bumped = kernel.at[1, 0, 0].add(eps)
    stack.kernel.value = bumped
    up = loss(stack, jnp.ones((2, 5, 3)))
    stack.kernel.value = kernel.at[1, 0, 0].add(-eps)
    down = loss(stack, jnp.ones((2, 5, 3)))
    np.testing.assert_allclose(g["kernel"].value[1, 0, 0], (up - down) / (2 * eps), rtol=2e-2)
