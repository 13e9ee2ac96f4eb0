"""EMA: Polyak averaging matches the formula, lives in a callable copy of the model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from training_models import Net, assert_trees_close, batch, gradients, params_of, set_params

from ramie import core
from ramie.training import EMA, Optimizer, TrainingError
from ramie.training import _errors as E


@settings(max_examples=25, deadline=None)
@given(
    decay=st.floats(0.0, 1.0),
    steps=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_property_averages_follow_the_formula(decay, steps, seed):
    model = Net(seed=seed)
    ema = EMA(model, decay=decay)
    expected = params_of(model)  # the averages start at the parameters
    keys = jax.random.split(jax.random.key(seed), steps)
    for key in keys:
        noise = jax.tree.map(lambda p, k=key: jax.random.normal(k, p.shape), params_of(model))
        new = jax.tree.map(jnp.add, params_of(model), noise)
        set_params(model, new)
        expected = jax.tree.map(lambda a, p: decay * a + (1 - decay) * p, expected, new)
        ema.update()
    assert_trees_close(params_of(ema.averaged), expected, rtol=1e-5, atol=1e-5)


def test_decay_zero_follows_the_model_and_one_keeps_the_start():
    model = Net()
    start = params_of(model)
    follow, keep = EMA(model, decay=0.0), EMA(model, decay=1.0)
    optimizer = Optimizer(model, optax.sgd(0.5))
    for i in range(3):
        optimizer.update(gradients(model, *batch(i))[1])
        follow.update()
        keep.update()
    assert_trees_close(params_of(follow.averaged), params_of(model), rtol=0, atol=0)
    assert_trees_close(params_of(keep.averaged), start, rtol=0, atol=0)


def test_other_state_is_copied_and_the_model_is_left_alone():
    model = Net()
    ema = EMA(model, decay=0.9)
    x, _ = batch(0)
    model(x)  # moves the BatchStat
    params = params_of(model)
    ema.update()
    np.testing.assert_array_equal(ema.averaged.running_mean.value, model.running_mean.value)
    assert ema.averaged.running_mean is not model.running_mean
    assert_trees_close(params_of(model), params, rtol=0, atol=0)
    assert ema.model is model and ema.averaged is not model
    assert isinstance(ema.averaged, Net)
    assert ema.averaged(x).shape == (16, 2)  # the averaged model is callable


def test_wrt_selects_what_is_averaged():
    model = Net()
    ema = EMA(model, decay=0.5, wrt=core.PathContains("kernel"))
    old_kernel = model.layers[0].kernel.value
    model.layers[0].kernel.value = old_kernel + 2.0
    model.layers[0].bias.value = model.layers[0].bias.value + 2.0
    ema.update()
    np.testing.assert_allclose(ema.averaged.layers[0].kernel.value, old_kernel + 1.0, rtol=1e-6)
    np.testing.assert_allclose(ema.averaged.layers[0].bias.value, model.layers[0].bias.value)


def test_under_jax_jit_with_model_and_optimizer():
    model = Net()
    optimizer = Optimizer(model, optax.adam(1e-2))
    ema = EMA(model, decay=0.8)
    graphdef, state = core.split((model, optimizer, ema))
    new_model, new_optimizer, new_ema = core.merge(graphdef, state)
    assert new_ema.model is new_model and new_optimizer.model is new_model

    @jax.jit
    def train_step(state, x, y):
        model, optimizer, ema = core.merge(graphdef, state)
        assert ema.model is model and optimizer.model is model
        optimizer.update(gradients(model, x, y)[1])
        ema.update()
        return core.split((model, optimizer, ema))[1]

    expected = params_of(model)
    for i in range(3):
        state = train_step(state, *batch(i))
        model, optimizer, ema = core.merge(graphdef, state)
        expected = jax.tree.map(lambda a, p: 0.8 * a + 0.2 * p, expected, params_of(model))
    assert_trees_close(params_of(ema.averaged), expected, rtol=1e-5, atol=1e-6)
    assert int(optimizer.step.value) == 3


def test_errors():
    with pytest.raises(TrainingError) as info:
        EMA(Net(), decay=1.5)
    assert str(info.value) == E.BAD_DECAY.format(decay=1.5)
    with pytest.raises(TrainingError):
        EMA(Net(), decay="0.9")
    with pytest.raises(TrainingError) as info:
        EMA([Net()])
    assert str(info.value) == E.NOT_A_MODULE.format(who="EMA", type_name="list")
    model = Net()
    ema = EMA(model)
    model.head_scale = core.Param(jnp.ones(()))
    with pytest.raises(TrainingError) as info:
        ema.update()
    message = str(info.value)
    assert message.startswith("EMA.update(): the Net model's state no longer has the structure")
    assert "unexpected (1):\n  - head_scale" in message
