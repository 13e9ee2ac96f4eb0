"""Modules and Rngs as JAX pytrees, as in Flax NNX 0.12 (issue 14): functional semantics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie import core


class Linear(core.Module):
    def __init__(self, din, dout, *, rngs):
        self.w = core.Param(jax.random.normal(rngs.params(), (din, dout)))
        self.b = core.Param(jnp.zeros(dout))
        self.din = din

    def __call__(self, x):
        return x @ self.w + self.b


class Net(core.Module):
    def __init__(self, rngs):
        self.layers = [Linear(2, 3, rngs=rngs), Linear(3, 1, rngs=rngs)]
        self.stats = core.BatchStat(jnp.zeros(1))
        self.offset = jnp.ones(1)  # a raw array attribute
        self.name = "net"

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x + self.offset


def loss(model, x):
    return (model(x) ** 2).mean()


def test_jax_tree_leaves_and_paths_are_readable():
    net = Net(core.Rngs(0))
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(net)[0]]
    assert paths == [
        ".layers[0].w.value",
        ".layers[0].b.value",
        ".layers[1].w.value",
        ".layers[1].b.value",
        ".stats.value",
        ".offset",
    ]
    leaves = jax.tree.leaves(net)
    assert [x.shape for x in leaves] == [(2, 3), (3,), (3, 1), (1,), (1,), (1,)]
    assert leaves[0] is net.layers[0].w.value
    key = jax.tree_util.tree_flatten_with_path(net)[0][0][0][0]
    assert key == core.PathKey(("layers", 0, "w")) and key.path == ("layers", 0, "w")
    assert repr(key) == "PathKey(('layers', 0, 'w'))"


def test_jax_jit_takes_and_returns_a_module_without_touching_the_callers():
    net = Net(core.Rngs(0))
    x = jnp.ones((4, 2))

    @jax.jit
    def step(model, x):
        model.stats.value = model.stats.value + 1
        model.layers[0].b.value = model.layers[0].b.value - 1
        return model, model(x)

    new, y = step(net, x)
    assert type(new) is Net and new is not net and new.name == "net"
    assert net.stats.value.tolist() == [0.0] and new.stats.value.tolist() == [1.0]
    assert net.layers[0].b.value.tolist() == [0.0] * 3
    assert new.layers[0].b.value.tolist() == [-1.0] * 3
    np.testing.assert_allclose(y, new(x), rtol=1e-6)


def test_jax_grad_returns_a_module_of_gradients():
    net = Net(core.Rngs(0))
    x = jnp.ones((4, 2))
    grads = jax.grad(loss)(net, x)
    assert type(grads) is Net and type(grads.layers[0].w) is core.Param
    _, state = core.split(net)
    expected = jax.grad(lambda s: loss(core.merge(core.graphdef(net), s), x))(state)
    np.testing.assert_allclose(grads.layers[0].w.value, expected["layers"][0]["w"].value)
    np.testing.assert_allclose(grads.offset, expected["offset"])


def test_jax_tree_map_rebuilds_the_module_with_its_kinds_and_statics():
    net = Net(core.Rngs(0))
    doubled = jax.tree.map(lambda x: x * 2, net)
    assert type(doubled.layers[1].w) is core.Param and type(doubled.stats) is core.BatchStat
    assert doubled.name == "net" and doubled.layers[0].din == 2
    np.testing.assert_allclose(doubled.layers[0].w.value, 2 * net.layers[0].w.value)
    shapes = jax.tree.map(
        lambda v: v.value.shape if isinstance(v, core.Variable) else "raw",
        net,
        is_leaf=lambda x: isinstance(x, core.Variable),
    )
    assert shapes.layers[0].w.value == (2, 3) and shapes.offset == "raw"


def test_a_shared_variable_is_one_leaf_and_comes_back_shared():
    net = Net(core.Rngs(0))
    net.tied = net.layers[0].w  # one Variable, two paths
    assert len(jax.tree.leaves(net)) == 6
    new = jax.tree.map(lambda x: x + 1, net)
    assert new.tied is new.layers[0].w
    assert new.tied is not net.tied
    out = jax.jit(lambda m: m)(net)
    assert out.tied is out.layers[0].w


def test_cycles_flatten_and_come_back():
    net = Net(core.Rngs(0))
    net.layers[1].parent = net
    new = jax.tree.map(lambda x: x, net)
    assert new.layers[1].parent is new


def test_vmap_over_a_stacked_module():
    net = Net(core.Rngs(0))
    stacked = jax.tree.map(lambda x: jnp.stack([x, 2 * x]), net)
    ys = jax.vmap(lambda m, x: m(x))(stacked, jnp.ones((2, 5, 2)))
    assert ys.shape == (2, 5, 1)
    np.testing.assert_allclose(ys[0], net(jnp.ones((5, 2))), rtol=1e-6)


def test_rngs_are_pytrees_with_functional_counters():
    rngs = core.Rngs(0, dropout=1)

    @jax.jit
    def draw(rngs):
        return rngs.dropout.normal((2,)), rngs

    a, after = draw(rngs)
    b, _ = draw(rngs)
    assert a.tolist() == b.tolist()  # the caller's counter did not move
    assert int(rngs.dropout.count.value) == 0 and int(after.dropout.count.value) == 1
    c, _ = draw(after)
    assert a.tolist() != c.tolist()
    assert [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(rngs)[0]] == [
        ".default.key.value",
        ".default.count.value",
        ".dropout.key.value",
        ".dropout.count.value",
    ]


def test_a_tracer_on_a_captured_module_is_still_refused():
    net = Net(core.Rngs(0))

    def f(x):
        net.h = x
        return x

    with pytest.raises(core.ModuleInJaxError):
        jax.jit(f)(jnp.ones(2))
    assert "h" not in vars(net)


def test_treedefs_match_for_equal_structures_and_differ_for_other_statics():
    a, b = Net(core.Rngs(0)), Net(core.Rngs(1))
    assert jax.tree.structure(a) == jax.tree.structure(b)
    b.name = "other"
    assert jax.tree.structure(a) != jax.tree.structure(b)
    with pytest.raises(ValueError):
        jax.tree.map(lambda x, y: x + y, a, b)


class Cell(core.Module):
    def __init__(self, widths, share):
        self.ps = [core.Param(jnp.full((w,), float(i))) for i, w in enumerate(widths)]
        if share and len(self.ps) > 1:
            self.ps.append(self.ps[0])


@settings(max_examples=25, deadline=None)
@given(widths=st.lists(st.integers(1, 4), min_size=1, max_size=5), share=st.booleans())
def test_tree_map_roundtrip_keeps_values_structure_and_sharing(widths, share):
    cell = Cell(widths, share)
    leaves = jax.tree.leaves(cell)
    assert len(leaves) == len(widths)  # the shared Param counts once
    copy = jax.tree.map(lambda x: x + 0, cell)
    assert jax.tree.structure(copy) == jax.tree.structure(cell)
    assert core.graphdef(copy) == core.graphdef(cell)
    for x, y in zip(jax.tree.leaves(copy), leaves, strict=True):
        assert x.tolist() == y.tolist()
    if share and len(widths) > 1:
        assert copy.ps[-1] is copy.ps[0]
