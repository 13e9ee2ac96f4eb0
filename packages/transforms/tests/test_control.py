"""remat, cond, switch, fori_loop, while_loop, eval_shape and shard_map with objects."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from transform_models import MLP, BatchNorm, Linear

from ramie import core
from ramie.transforms import (
    CarryError,
    StateAxes,
    StructureChangedError,
    cond,
    eval_shape,
    fori_loop,
    grad,
    jit,
    remat,
    shard_map,
    switch,
    while_loop,
)


class Counter(core.Module):
    def __init__(self):
        self.n = core.Variable(jnp.array(0))


def test_remat_gives_the_same_gradients_and_state():
    x = jax.random.normal(jax.random.key(0), (6, 3))
    a, b = MLP(3, 8, 2, rngs=core.Rngs(0)), MLP(3, 8, 2, rngs=core.Rngs(0))

    def loss(m):
        return jnp.sum(m(x) ** 2)

    plain = grad(loss)(a)
    saved = grad(remat(loss, policy=jax.checkpoint_policies.nothing_saveable))(b)
    for path, leaf in core.State(plain).flat_state().items():
        np.testing.assert_allclose(
            core.State(saved).flat_state()[path].value, leaf.value, rtol=1e-5, atol=1e-6
        )
    np.testing.assert_allclose(a.bn.mean.value, b.bn.mean.value, rtol=1e-6)
    assert int(b.dropout.rngs.default.count.value) == int(a.dropout.rngs.default.count.value)


def test_remat_is_really_a_checkpoint():
    lin = Linear(3, 3, rngs=core.Rngs(0))
    jaxpr = jax.make_jaxpr(lambda x: grad(lambda m: remat(lambda m: m(x).sum())(m))(lin))(
        jnp.ones((2, 3))
    )
    assert "checkpoint" in str(jaxpr) or "remat" in str(jaxpr)


def test_cond_and_switch_mutate_under_jit():
    c = Counter()

    @jit
    def step(c, flag, which):
        cond(flag, lambda c: c.n.__setattr__("value", c.n.value + 10), lambda c: None, c)
        return switch(
            which,
            [lambda c: c.n.value * 0, lambda c: c.n.value * 1, lambda c: c.n.value * 2],
            c,
        )

    assert int(step(c, True, 2)) == 20
    assert int(step(c, False, 1)) == 10
    assert int(c.n.value) == 10


def test_cond_branches_that_change_structure_differently_fail():
    bn = BatchNorm(2)

    def sow(m):
        m.sow(core.Intermediate, "seen", jnp.ones(1))

    with pytest.raises(StructureChangedError) as info:
        cond(True, sow, lambda m: None, bn)
    assert "branch 1: 'args[0]/seen': added (an Intermediate Variable)" in str(info.value)


def test_fori_and_while_loops_with_objects_in_the_value():
    c = Counter()

    def body(i, val):
        counter, total = val
        counter.n.value = counter.n.value + 1
        return counter, total + i

    out_c, total = jit(lambda c: fori_loop(0, 5, body, (c, jnp.array(0))))(c)
    assert out_c is c and int(c.n.value) == 5 and int(total) == 10

    def double(c):
        c.n.value = c.n.value * 2 + 1
        return c

    while_loop(lambda c: c.n.value < 100, double, c)
    assert int(c.n.value) == 191  # 5 -> 11 -> 23 -> 47 -> 95 -> 191


def test_loop_whose_state_changes_shape_is_a_carry_error():
    def body(i, c):
        c.n.value = jnp.zeros(2, dtype=jnp.int32)
        return c

    with pytest.raises(CarryError) as info:
        fori_loop(0, 2, body, Counter())
    assert "'val/n': int32[] -> int32[2]" in str(info.value)


def test_eval_shape_builds_models_abstractly():
    class Huge(core.Module):
        def __init__(self, rngs):
            self.w = core.Param(jax.random.normal(rngs.params(), (100_000, 100_000)))
            self.inner = Linear(4, 5, rngs=rngs)

    model = eval_shape(lambda: Huge(core.Rngs(0)))
    assert model.w.value.shape == (100_000, 100_000)  # 40 GB if it were real
    assert isinstance(model.w.value, jax.ShapeDtypeStruct)
    assert model.inner.kernel.value.shape == (4, 5)
    graphdef, state = core.split(model)
    assert len(state.flat_state()) == 3
    m = Linear(2, 2, rngs=core.Rngs(0))
    out = eval_shape(lambda m, x: m(x), m, jnp.ones((7, 2)))
    assert out.shape == (7, 2)
    assert isinstance(m.kernel.value, jax.Array)  # inputs untouched


def test_shard_map_with_per_filter_specs():
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    bn = BatchNorm(4)
    x = jax.random.normal(jax.random.key(0), (16, 4))

    def stats(bn, x):
        local = x.mean(0)
        bn.mean.value = jax.lax.pmean(local, "data")
        return jax.lax.psum(x.sum(0), "data")

    f = shard_map(
        stats,
        mesh=mesh,
        in_specs=(StateAxes({core.BatchStat: P(), ...: P()}), P("data")),
        out_specs=P(),
    )
    total = jit(f)(bn, x)
    np.testing.assert_allclose(total, x.sum(0), rtol=1e-5)
    np.testing.assert_allclose(bn.mean.value, x.mean(0), rtol=1e-5, atol=1e-6)
