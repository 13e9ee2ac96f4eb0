"""vmap over ramie objects: stacked creation, StateAxes, split_rngs and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from transform_models import MLP, BatchNorm, Dropout, Linear

from ramie import core
from ramie.transforms import StateAxes, TransformArgumentError, jit, split_rngs, vmap
from ramie.transforms import _errors as terrors


def test_creating_modules_inside_vmap_stacks_their_state():
    @vmap(in_axes=0, out_axes=0)
    def create(key):
        return MLP(4, 8, 4, rngs=core.Rngs(key))

    stack = create(jax.random.split(jax.random.key(0), 5))
    assert stack.linear1.kernel.value.shape == (5, 4, 8)
    assert stack.bn.mean.value.shape == (5, 8)
    assert stack.dropout.rngs.default.count.value.shape == (5,)
    kernels = np.asarray(stack.linear1.kernel.value)
    assert not np.allclose(kernels[0], kernels[1])  # different keys, different weights
    single = MLP(4, 8, 4, rngs=core.Rngs(jax.random.split(jax.random.key(0), 5)[2]))
    np.testing.assert_allclose(kernels[2], single.linear1.kernel.value, rtol=1e-6)


def test_in_axes_none_broadcasts_and_per_copy_state_updates():
    stack = vmap(lambda k: BatchNorm(3), in_axes=0)(jnp.arange(4))
    x = jax.random.normal(jax.random.key(0), (4, 6, 3))  # one batch per copy

    @vmap(in_axes=(0, 0))
    def forward(bn, x):
        return bn(x)

    forward(stack, x)
    for i in range(4):
        np.testing.assert_allclose(stack.mean.value[i], 0.1 * x[i].mean(0), rtol=1e-5)
    shared = Linear(3, 2, rngs=core.Rngs(0))
    out = vmap(lambda m, x: m(x), in_axes=(None, 0))(shared, x)
    np.testing.assert_allclose(out[1], shared(x[1]), rtol=1e-5)


def test_state_axes_choose_axes_per_filter():
    bn = BatchNorm(3)
    bn.scale.value = jnp.ones((2, 3))  # per-copy scales, shared statistics
    bn.bias.value = jnp.zeros((2, 3))
    bn.use_running_average = True
    axes = StateAxes({core.Param: 0, core.BatchStat: None})
    x = jnp.ones((2, 5, 3))
    out = vmap(lambda m, x: m(x), in_axes=(axes, 0))(bn, x)
    assert out.shape == (2, 5, 3)
    assert bn.mean.value.shape == (3,)


def test_state_axes_without_a_matching_filter_names_the_path():
    axes = StateAxes({core.Param: 0})
    with pytest.raises(TransformArgumentError) as info:
        vmap(lambda m: 0, in_axes=(axes,))(BatchNorm(3))
    assert "no filter of the StateAxes matches 'mean' (BatchStat)" in str(info.value)
    assert "`...: 0`" in str(info.value)


def test_split_rngs_gives_each_copy_its_own_keys_and_restores():
    rngs = core.Rngs(0)
    key_before = rngs.default.key.value

    @split_rngs(splits=4)
    @vmap(in_axes=(0, 0))
    def noise(rngs, x):
        return x + jax.random.normal(rngs.default(), x.shape)

    a = noise(rngs, jnp.zeros((4, 3)))
    assert len({tuple(np.round(r, 5)) for r in np.asarray(a)}) == 4  # copies differ
    assert rngs.default.key.value.shape == ()
    assert jax.random.key_data(rngs.default.key.value).tolist() == (
        jax.random.key_data(key_before).tolist()
    )
    assert int(rngs.default.count.value) == 1  # one split consumed
    b = noise(rngs, jnp.zeros((4, 3)))
    assert not np.allclose(a, b)  # the next split differs


def test_split_rngs_as_context_manager_and_dropout_differs_per_copy():
    rngs = core.Rngs(dropout=1)
    drop = Dropout(0.5, rngs=rngs)
    with split_rngs(drop, splits=3):
        assert rngs.dropout.key.value.shape == (3,)
        masks = vmap(lambda d, x: d(x), in_axes=(0, None))(drop, jnp.ones(64))
    assert rngs.dropout.key.value.shape == ()
    assert not np.array_equal(masks[0], masks[1])


def test_broadcast_rng_counter_advances_once_per_vmapped_call():
    rngs = core.Rngs(0)
    vmap(lambda r, x: x + jax.random.uniform(r.default()), in_axes=(None, 0))(rngs, jnp.ones(3))
    assert int(rngs.default.count.value) == 1


def test_writing_a_batched_value_into_broadcast_state_is_a_clear_error():
    bn = BatchNorm(3)
    with pytest.raises(TransformArgumentError) as info:
        vmap(lambda m, x: m(x), in_axes=(None, 0))(bn, jnp.ones((2, 4, 3)))
    message = str(info.value)
    assert "'args[0]/mean', 'args[0]/var' had in_axes None (broadcast)" in message


def test_in_axes_arity_error():
    with pytest.raises(TransformArgumentError) as info:
        vmap(lambda a, b: a + b, in_axes=(0,))(jnp.ones(2), jnp.ones(2))
    assert str(info.value) == terrors.IN_AXES_ARITY.format(transform="vmap", given=1, count=2)


def test_vmap_inside_jit_and_pytree_prefix_axes():
    stack = vmap(lambda k: Linear(2, 2, rngs=core.Rngs(k)))(jnp.arange(3))

    @jit
    def apply(stack, batch):
        return vmap(lambda m, b: m(b["x"]) + b["c"], in_axes=(0, {"x": 0, "c": None}))(stack, batch)

    out = apply(stack, {"x": jnp.ones((3, 5, 2)), "c": jnp.array(1.0)})
    assert out.shape == (3, 5, 2)
