"""NNX parity of the mapping transforms: pmap, in_axes for keywords, StateAxes in out_axes,
PARTITION_NAME, and make_jaxpr / checkify over ramie objects."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.experimental import checkify as ck

from ramie import core
from ramie.transforms import (
    PARTITION_NAME,
    Carry,
    StateAxes,
    TransformArgumentError,
    _axes,
    checkify,
    grad,
    jit,
    make_jaxpr,
    pmap,
    scan,
    split_rngs,
    vmap,
)


class Dense(core.Module):
    def __init__(self, din, dout, rngs, sharding=None):
        kw = {} if sharding is None else {"sharding": sharding}
        self.kernel = core.Param(jax.random.normal(rngs.params(), (din, dout)), **kw)
        self.count = core.BatchStat(jnp.array(0))

    def __call__(self, x):
        self.count.value += 1
        return x @ self.kernel.value


# -- pmap -----------------------------------------------------------------------------
def test_eight_devices():
    assert jax.device_count() == 8


def test_pmap_builds_one_layer_per_device_like_vmap():
    rngs = core.Rngs(0)
    with split_rngs(rngs, splits=8):
        by_pmap = pmap(lambda r: Dense(2, 3, r))(rngs)
    rngs2 = core.Rngs(0)
    with split_rngs(rngs2, splits=8):
        by_vmap = vmap(lambda r: Dense(2, 3, r))(rngs2)
    assert by_pmap.kernel.value.shape == (8, 2, 3)
    np.testing.assert_allclose(by_pmap.kernel.value, by_vmap.kernel.value, rtol=1e-6)
    assert len({float(k[0, 0]) for k in by_pmap.kernel.value}) == 8  # distinct keys


def test_pmap_writes_mutations_back_and_reduces_across_devices():
    rngs = core.Rngs(0)
    with split_rngs(rngs, splits=8):
        stack = vmap(lambda r: Dense(2, 3, r))(rngs)
    x = jnp.ones((8, 4, 2))

    @pmap(axis_name="batch", in_axes=(0, 0))
    def loss_grads(m, x):
        g = grad(lambda m: (m(x) ** 2).mean())(m)
        return jax.lax.pmean(g["kernel"].value, "batch")

    out = loss_grads(stack, x)
    assert out.shape == (8, 2, 3)
    # every device holds the same mean gradient ...
    np.testing.assert_allclose(out, jnp.broadcast_to(out[0], out.shape), rtol=1e-6)
    # ... equal to the mean of the per-layer gradients computed one by one
    per_layer = [
        jax.grad(lambda k, xi: ((xi @ k) ** 2).mean())(stack.kernel.value[i], x[i])
        for i in range(8)
    ]
    np.testing.assert_allclose(out[0], np.mean(per_layer, axis=0), rtol=1e-5)
    assert stack.count.value.tolist() == [1] * 8  # BatchStat mutations came back


def test_pmap_broadcasts_an_object_with_in_axes_none():
    m = Dense(2, 2, core.Rngs(1))
    out = pmap(lambda m, x: m(x), in_axes=(None, 0))(m, jnp.ones((8, 2)))
    np.testing.assert_allclose(out, jnp.broadcast_to(jnp.ones(2) @ m.kernel.value, (8, 2)))


def test_pmap_is_cached_per_structure():
    traces = []

    def f(m, x):
        traces.append(1)
        return m(x)

    g = pmap(f, in_axes=(None, 0))
    m = Dense(2, 2, core.Rngs(1))
    g(m, jnp.ones((8, 2)))
    g(m, jnp.ones((8, 2)))  # JAX traces again: the state now lives on all 8 devices
    after_two = len(traces)
    for _ in range(3):
        g(m, jnp.ones((8, 2)))
    assert after_two <= 2 and len(traces) == after_two
    assert int(m.count.value) == 5


# -- in_axes for keyword arguments ---------------------------------------------------
def test_vmap_keyword_arguments_take_their_positions_in_axes():
    @vmap(in_axes=(0, None))
    def add(x, y):
        return x + y

    y = jnp.array([10.0, 20.0])
    np.testing.assert_allclose(add(jnp.arange(3.0), y=y), add(jnp.arange(3.0), y))
    assert add(jnp.arange(3.0), y=y).shape == (3, 2)  # y broadcast, not mapped


def test_vmap_keyword_object_is_broadcast_by_its_position():
    m = Dense(2, 2, core.Rngs(0))
    out = vmap(lambda x, m: m(x), in_axes=(0, None))(jnp.ones((5, 2)), m=m)
    assert out.shape == (5, 2) and int(m.count.value) == 1


def test_vmap_skipped_parameters_take_their_defaults():
    @vmap(in_axes=(0, None, 0))
    def f(x, scale=2.0, shift=None):
        return x * scale + shift

    np.testing.assert_allclose(f(jnp.arange(3.0), shift=jnp.ones(3)), [1.0, 3.0, 5.0])


def test_vmap_keyword_only_arguments_are_mapped_over_axis_0():
    def f(x, *, y):
        return x + y

    out = vmap(f, in_axes=None)(jnp.ones(2), y=jnp.arange(3.0))
    assert out.shape == (3, 2)


def test_scan_keyword_arguments_take_their_positions_in_axes():
    @scan(in_axes=(Carry, 0), out_axes=(Carry, 0))
    def cumsum(total, x):
        total = total + x
        return total, total

    total, ys = cumsum(jnp.array(0.0), x=jnp.arange(4.0))
    assert float(total) == 6.0 and ys.tolist() == [0.0, 1.0, 3.0, 6.0]


# -- StateAxes in out_axes --------------------------------------------------------------
def test_state_axes_in_out_axes_chooses_each_leafs_axis():
    keys = jax.random.split(jax.random.key(0), 4)
    stack = vmap(
        lambda k: Dense(2, 3, core.Rngs(k)),
        out_axes=StateAxes({core.Param: 2, core.BatchStat: None}),
    )(keys)
    assert stack.kernel.value.shape == (2, 3, 4)
    assert stack.count.value.shape == ()
    one = Dense(2, 3, core.Rngs(keys[1]))
    np.testing.assert_allclose(stack.kernel.value[..., 1], one.kernel.value)


def test_state_axes_in_out_axes_inside_a_tuple_output():
    keys = jax.random.split(jax.random.key(0), 3)
    stack, ys = vmap(
        lambda k: (Dense(2, 2, core.Rngs(k)), jnp.sum(jax.random.key_data(k))),
        out_axes=(StateAxes({...: 0}), 0),
    )(keys)
    assert stack.kernel.value.shape == (3, 2, 2) and ys.shape == (3,)


def test_state_axes_in_out_axes_for_an_array_is_an_error():
    with pytest.raises(TransformArgumentError, match="StateAxes applies to ramie objects"):
        vmap(lambda x: x * 2, out_axes=StateAxes({...: 0}))(jnp.ones(3))


def test_state_axes_out_axis_none_for_a_batched_leaf_fails_as_in_jax():
    keys = jax.random.split(jax.random.key(0), 4)
    with pytest.raises(ValueError, match="out_axes"):
        vmap(lambda k: Dense(2, 3, core.Rngs(k)), out_axes=StateAxes({...: None}))(keys)


# -- PARTITION_NAME --------------------------------------------------------------------
def test_partition_name_inserts_the_axis_name_in_sharding():
    keys = jax.random.split(jax.random.key(0), 4)
    stack = vmap(
        lambda k: Dense(2, 3, core.Rngs(k), sharding=("embed", "mlp")),
        transform_metadata={PARTITION_NAME: "layers"},
    )(keys)
    assert stack.kernel.sharding == ("layers", "embed", "mlp")
    assert "sharding" not in stack.count.metadata  # no sharding metadata: left alone


def test_partition_name_at_another_out_axis():
    keys = jax.random.split(jax.random.key(0), 4)
    stack = vmap(
        lambda k: Dense(2, 3, core.Rngs(k), sharding=("embed", "mlp")),
        out_axes=StateAxes({core.Param: 1, ...: 0}),
        transform_metadata={PARTITION_NAME: "layers"},
    )(keys)
    assert stack.kernel.value.shape == (2, 4, 3)
    assert stack.kernel.sharding == ("embed", "layers", "mlp")


def test_partition_name_is_taken_out_inside_scan_and_vmap():
    keys = jax.random.split(jax.random.key(0), 3)
    meta = {PARTITION_NAME: "layers"}
    stack = vmap(
        lambda k: Dense(2, 2, core.Rngs(k), sharding=("embed", "mlp")), transform_metadata=meta
    )(keys)
    seen = []

    @scan(in_axes=(0, Carry), out_axes=Carry, transform_metadata=meta)
    def forward(layer, x):
        seen.append(layer.kernel.sharding)
        return layer(x)

    forward(stack, jnp.ones(2))

    @vmap(in_axes=(0, None), transform_metadata=meta)
    def each(layer, x):
        seen.append(layer.kernel.sharding)
        return layer(x)

    each(stack, jnp.ones(2))
    assert seen == [("embed", "mlp"), ("embed", "mlp")]
    assert stack.kernel.sharding == ("layers", "embed", "mlp")  # the caller's is unchanged
    assert stack.count.value.tolist() == [2, 2, 2]  # both passes wrote back


# -- make_jaxpr / checkify ---------------------------------------------------------------
def test_make_jaxpr_shows_state_updates_and_leaves_objects_alone():
    m = Dense(2, 3, core.Rngs(0))
    jaxpr = make_jaxpr(lambda m, x: m(x))(m, jnp.ones((1, 2)))
    shapes = [tuple(a.shape) for a in jaxpr.out_avals]
    assert shapes == [(2, 3), (), (1, 3)]  # kernel, count (new values), then the output
    assert "dot_general" in str(jaxpr) and int(m.count.value) == 0


def test_make_jaxpr_static_argnums_and_return_shape():
    def f(m, n):
        return jnp.ones(n) @ jnp.ones((n, 2)) + m.kernel.value.sum()

    jaxpr, shape = make_jaxpr(f, static_argnums=1, return_shape=True)(Dense(2, 2, core.Rngs(0)), 5)
    assert shape == jax.ShapeDtypeStruct((2,), jnp.float32)
    assert len(jaxpr.in_avals) == 2  # the two leaves of the Dense; n is static


def test_checkify_reports_a_failed_check_and_writes_mutations_back():
    def step(m, x):
        ck.check(jnp.all(x > 0), "x must be positive")
        return m(x)

    m = Dense(2, 2, core.Rngs(0))
    err, out = jit(checkify(step))(m, jnp.ones((1, 2)))
    assert err.get() is None and out.shape == (1, 2) and int(m.count.value) == 1
    err, _ = checkify(step)(m, -jnp.ones((1, 2)))
    with pytest.raises(ck.JaxRuntimeError, match="x must be positive"):
        err.throw()
    assert int(m.count.value) == 2


def test_checkify_with_float_checks_catches_nan():
    m = Dense(2, 2, core.Rngs(0))
    err, _ = checkify(lambda m: jnp.log(m.kernel.value.sum() ** 2 + 1), errors=ck.float_checks)(m)
    assert err.get() is None
    err, _ = checkify(lambda m: jnp.log(-(m.kernel.value.sum() ** 2) - 1), errors=ck.float_checks)(
        m
    )
    assert "nan generated" in err.get()


# -- bind_keywords, the rule behind keyword in_axes -----------------------------------
def _function(n_positional: int, first_default: int, n_keyword_only: int):
    names = [f"p{i}" for i in range(n_positional)]
    params = [f"{n}={i}" if i >= first_default else n for i, n in enumerate(names)]
    kw_only = [f"k{i}=None" for i in range(n_keyword_only)]
    source = f"def f({', '.join([*params, *(['*', *kw_only] if kw_only else [])])}): pass"
    namespace: dict = {}
    exec(source, namespace)
    return namespace["f"]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_bind_keywords_keeps_the_call_and_leaves_only_keyword_only_names(data):
    n = data.draw(st.integers(0, 5), label="positional parameters")
    first_default = data.draw(st.integers(0, n), label="first with a default")
    f = _function(n, first_default, data.draw(st.integers(0, 2), label="keyword-only"))
    given_positionally = data.draw(st.integers(0, n), label="passed by position")
    args = tuple(f"a{i}" for i in range(given_positionally))
    kwargs = {
        f"p{i}": f"v{i}"
        for i in range(given_positionally, n)
        if i < first_default or data.draw(st.booleans(), label=f"pass p{i}")
    }
    keyword_only = [p for p in inspect.signature(f).parameters if p.startswith("k")]
    kwargs.update({k: "kw" for k in keyword_only if data.draw(st.booleans(), label=f"pass {k}")})
    bound_args, rest = _axes.bind_keywords(f, args, kwargs)
    sig = inspect.signature(f)
    before, after = sig.bind(*args, **kwargs), sig.bind(*bound_args, **rest)
    before.apply_defaults()
    after.apply_defaults()
    assert before.arguments == after.arguments  # the same call
    assert all(k.startswith("k") for k in rest)  # only keyword-only names stay keywords
    assert bound_args[: len(args)] == args
