"""Flax NNX names in training (issue 15): ModelAndOptimizer, update's result, EMA params/apply_to,
and the message for the gradients of a submodule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pytest
from training_models import Net, assert_trees_close, batch, gradients, params_of

from ramie import core
from ramie.training import EMA, ModelAndOptimizer, Optimizer, TrainingError
from ramie.training import _errors as E


def test_update_returns_the_updates_it_applied():
    model = Net()
    optimizer = Optimizer(model, optax.adam(0.1))
    before = params_of(model)
    _, grads = gradients(model, *batch(0))
    updates = optimizer.update(grads)
    after = params_of(model)
    assert jax.tree.structure(updates) == jax.tree.structure(before)
    assert_trees_close(jax.tree.map(jnp.add, before, updates), after)
    # adam's first step moves every parameter by about the learning rate
    assert all(abs(float(jnp.abs(u).max()) - 0.1) < 1e-3 for u in jax.tree.leaves(updates))


def test_model_and_optimizer_takes_only_grads():
    model = Net()
    optimizer = ModelAndOptimizer(model, optax.sgd(0.5))
    reference = Net()
    plain = Optimizer(reference, optax.sgd(0.5))
    for i in range(3):
        _, grads = gradients(model, *batch(i))
        optimizer.update(grads)
        _, grads = gradients(reference, *batch(i))
        plain.update(grads)
    assert optimizer.model is model and int(optimizer.step.value) == 3
    assert_trees_close(params_of(model), params_of(reference))
    with pytest.raises(TypeError):
        optimizer.update(model, grads)  # NNX's ModelAndOptimizer.update takes grads only


def test_gradients_of_a_submodule_say_so():
    model = Net()
    optimizer = Optimizer(model, optax.sgd(0.1))
    sub = model.layers[1]
    graphdef, params = core.split(sub, core.Param)
    grads = jax.grad(lambda p: core.merge(graphdef, p)(jnp.ones((2, 8))).sum())(params)
    with pytest.raises(TrainingError) as info:
        optimizer.update(grads)
    assert str(info.value) == E.GRADS_OF_SUBMODULE.format(
        found=2,
        submodule=core.format_path(("layers", 1)),
        model="Net",
        example=core.format_path(("bias",)),
        full=core.format_path(("layers", 1, "bias")),
        attr="layers[1]",
    )
    assert "Optimizer(model.layers[1], tx)" in str(info.value)
    assert "another model" not in str(info.value)


def test_ema_params_apply_to_and_update_with_the_model():
    model = Net()
    ema = EMA(model, decay=0.5)
    view = ema.apply_to(model)
    assert view is ema.averaged
    start = params_of(model)
    set_to = jax.tree.map(lambda x: x + 2.0, start)
    params = core.state(model, core.Param)
    core.replace_by_pure_dict(params, set_to)
    core.update(model, params)
    ema.update(model)  # NNX's form: the model is passed
    halfway = jax.tree.map(lambda x: x + 1.0, start)
    assert_trees_close(core.to_pure_dict(ema.params), halfway)
    assert_trees_close(params_of(view), halfway)  # the view follows the averages
    model(jnp.ones((4, 3)))  # moves the BatchStat
    ema.apply_to(model)
    assert float(view.running_mean.value[0]) == float(model.running_mean.value[0]) != 0.0


def test_ema_apply_to_another_structure_is_an_error():
    ema = EMA(Net(), decay=0.5)
    with pytest.raises(TrainingError, match=r"^EMA.apply_to\(model\): the Net model does not"):
        ema.apply_to(Net(sizes=(3, 8, 8, 2)))
