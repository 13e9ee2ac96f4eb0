"""Memory of a train step (issue 16): no second copy of the parameters stays alive.

Counted with ``jax.live_arrays()`` (live, not deleted), against the same step in raw
``jax.jit``. The parameters have shapes no other test uses, so arrays left alive by
other tests in the process do not count.
"""

from __future__ import annotations

import gc

import jax
import jax.numpy as jnp
import pytest

from ramie import core
from ramie.transforms import grad, jit

SHAPES = [(67, 131), (131,), (131, 7)]


class Net(core.Module):
    def __init__(self):
        self.w1 = core.Param(jnp.full(SHAPES[0], 0.01))
        self.b1 = core.Param(jnp.zeros(SHAPES[1]))
        self.w2 = core.Param(jnp.full(SHAPES[2], 0.01))
        self.seen = core.BatchStat(jnp.zeros(()))  # a scalar; not counted below
        self.rngs = core.Rngs(0)  # a key the step never changes

    def __call__(self, x):
        return jax.nn.relu(x @ self.w1.value + self.b1.value) @ self.w2.value


def _loss(params, x):
    h = jax.nn.relu(x @ params["w1"] + params["b1"])
    return jnp.sum((h @ params["w2"]) ** 2)


def _live() -> tuple[int, int]:
    """(count, bytes) of the live arrays with the parameters' shapes."""
    gc.collect()
    arrays = [a for a in jax.live_arrays() if not a.is_deleted() and a.shape in SHAPES]
    return len(arrays), sum(a.nbytes for a in arrays)


def _raw_step(donate: bool):
    params = {
        "w1": jnp.full(SHAPES[0], 0.01),
        "b1": jnp.zeros(SHAPES[1]),
        "w2": jnp.full(SHAPES[2], 0.01),
    }

    @jax.jit
    def update(params, x):
        g = jax.grad(_loss)(params, x)
        return jax.tree.map(lambda p, d: p - 0.1 * d, params, g)

    if donate:
        update = jax.jit(update, donate_argnums=0)
    return params, update


def _ramie_step(donate: bool):
    @jit(donate_argnums=0 if donate else None)
    def step(net, x):
        g = grad(lambda n: jnp.sum(n(x) ** 2))(net)
        net.w1.value = net.w1.value - 0.1 * g.w1.value
        net.b1.value = net.b1.value - 0.1 * g.b1.value
        net.w2.value = net.w2.value - 0.1 * g.w2.value
        net.seen.value = net.seen.value + 1

    return step


@pytest.mark.parametrize("donate", [True, False])
def test_a_train_step_leaves_one_copy_of_the_parameters_like_raw_jit(donate):
    x = jnp.ones((4, SHAPES[0][0]))
    assert _live() == (0, 0)
    params, update = _raw_step(donate)
    for _ in range(3):
        params = update(params, x)
    jax.block_until_ready(params)
    raw = _live()
    assert raw == (3, sum(a.nbytes for a in jax.tree.leaves(params)))
    del params
    assert _live() == (0, 0)

    net = Net()
    before = _live()
    assert before == raw
    old = [net.w1.value, net.b1.value, net.w2.value]
    key = net.rngs.default.key.value
    step = _ramie_step(donate)
    for _ in range(3):
        step(net, x)
    jax.block_until_ready(net.w1.value)
    assert all(a.is_deleted() for a in old) is donate
    del old
    assert _live() == raw  # only the new parameters: no copy held by ramie
    assert int(net.seen.value) == 3
    # A PRNG key is never donated: the unchanged key stays the very same array.
    assert net.rngs.default.key.value is key and not key.is_deleted()


def test_a_donated_step_in_a_loop_keeps_the_live_bytes_flat():
    x = jnp.ones((4, SHAPES[0][0]))
    net = Net()
    step = _ramie_step(True)
    step(net, x)
    gc.collect()
    count0, bytes0 = len(jax.live_arrays()), sum(a.nbytes for a in jax.live_arrays())
    for _ in range(20):
        step(net, x)
    jax.block_until_ready(net.w1.value)
    gc.collect()
    assert (len(jax.live_arrays()), sum(a.nbytes for a in jax.live_arrays())) == (count0, bytes0)
