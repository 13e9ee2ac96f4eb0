"""Optimizer: in-place updates equal optax applied by hand, state as Variables, jit, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from training_models import (
    Dense,
    Net,
    assert_trees_close,
    batch,
    by_hand,
    gradients,
    loss_of,
    params_of,
)

from ramie import core
from ramie.training import Optimizer, OptState, TrainingError
from ramie.training import _errors as E


def train(model, optimizer, steps: int, seed: int = 0) -> list:
    """Eager training; returns the gradient dicts used (for replaying with optax)."""
    used = []
    for i in range(steps):
        x, y = batch(seed + i)
        _, grads = gradients(model, x, y)
        used.append(core.to_pure_dict(grads))
        optimizer.update(grads)
    return used


# -- the basics ---------------------------------------------------------------------
def test_holds_a_reference_to_the_model_and_its_state_as_optstate_variables():
    model = Net()
    optimizer = Optimizer(model, optax.adam(1e-3))
    assert optimizer.model is model
    assert int(optimizer.step.value) == 0 and optimizer.step.value.dtype == jnp.uint32
    opt_state = core.state(optimizer, OptState)
    paths = set(opt_state.flat_state())
    # adam = chain(scale_by_adam, scale_by_learning_rate): count, mu, nu per parameter
    assert ("step",) in paths
    assert ("opt_state", 0, 0) in paths  # the count
    assert ("opt_state", 0, 1, "layers", 0, "kernel") in paths  # mu
    assert ("opt_state", 0, 2, "layers", 1, "bias") in paths  # nu
    n_params = len(core.state(model, core.Param).flat_state())
    assert len(paths) == 2 + 2 * n_params
    # the model's Params are reachable from the optimizer, and are the same Variables
    assert optimizer.model.layers[0].kernel is model.layers[0].kernel


@pytest.mark.parametrize(
    "tx",
    [optax.sgd(0.1), optax.sgd(0.05, momentum=0.9), optax.adam(1e-2), optax.adamw(1e-2)],
    ids=["sgd", "momentum", "adam", "adamw"],
)
def test_updates_equal_optax_applied_by_hand(tx):
    model = Net()
    before = params_of(model)
    stats_before = model.running_mean.value
    optimizer = Optimizer(model, tx)
    used = train(model, optimizer, steps=5)
    assert_trees_close(params_of(model), by_hand(before, tx, used))
    assert int(optimizer.step.value) == 5
    assert model.running_mean.value is stats_before  # not a parameter: untouched
    assert model.activation == "tanh"


def test_the_loss_decreases():
    model = Net()
    optimizer = Optimizer(model, optax.adam(1e-2))
    x, y = batch(0)
    first = float(loss_of(core.clone(model), x, y))
    for _ in range(60):
        _, grads = gradients(model, x, y)
        optimizer.update(grads)
    assert float(loss_of(core.clone(model), x, y)) < 0.5 * first


def test_update_with_the_model_first_is_the_same_as_without():
    a, b = Net(), Net()
    opt_a, opt_b = Optimizer(a, optax.adam(1e-2)), Optimizer(b, optax.adam(1e-2))
    x, y = batch(1)
    for _ in range(3):
        opt_a.update(gradients(a, x, y)[1])
        opt_b.update(b, gradients(b, x, y)[1])
    assert_trees_close(params_of(a), params_of(b), rtol=0, atol=0)


def test_grads_may_be_a_pure_dict():
    a, b = Net(), Net()
    opt_a, opt_b = Optimizer(a, optax.sgd(0.1)), Optimizer(b, optax.sgd(0.1))
    _, grads = gradients(a, *batch(2))
    opt_a.update(grads)
    opt_b.update(core.to_pure_dict(grads))
    assert_trees_close(params_of(a), params_of(b), rtol=0, atol=0)


def test_wrt_any_filter_updates_only_what_it_selects():
    model = Net()
    kernels = core.All(core.Param, core.PathContains("kernel"))
    before = params_of(model)
    optimizer = Optimizer(model, optax.sgd(0.5), wrt=kernels)
    x, y = batch(3)
    graphdef, params, rest = core.split(model, kernels, ...)
    grads = jax.grad(lambda p: loss_of(core.merge(graphdef, p, rest), x, y))(params)
    optimizer.update(grads)
    for i, layer in enumerate(model.layers):
        np.testing.assert_array_equal(layer.bias.value, before["layers"][i]["bias"])
        expected = before["layers"][i]["kernel"] - 0.5 * grads["layers"][i]["kernel"].value
        np.testing.assert_allclose(layer.kernel.value, expected, rtol=1e-6)


def test_batchstat_optimizer_wrt_a_tuple_of_kinds():
    model = Net()
    optimizer = Optimizer(model, optax.sgd(1.0), wrt=(core.Param, core.BatchStat))
    grads = jax.tree.map(jnp.ones_like, core.state(model, (core.Param, core.BatchStat)))
    optimizer.update(grads)
    np.testing.assert_allclose(model.running_mean.value, -np.ones(3))


# -- optax features: extra arguments, MultiSteps, schedules ---------------------------------
def test_extra_arguments_reach_optax_lbfgs_line_search():
    class Quadratic(core.Module):
        def __init__(self):
            self.w = core.Param(jnp.array([3.0, -2.0, 1.0]))

    target = jnp.array([1.0, 2.0, 3.0])
    scales = jnp.array([1.0, 10.0, 100.0])

    def value_fn(params):  # optax sees the parameters as the pure dict
        return jnp.sum(scales * (params["w"] - target) ** 2)

    model = Quadratic()
    optimizer = Optimizer(model, optax.lbfgs())
    for _ in range(15):
        params = core.to_pure_dict(core.state(model, core.Param))
        value, grad = jax.value_and_grad(value_fn)(params)
        optimizer.update(grad, value=value, grad=grad, value_fn=value_fn)
    np.testing.assert_allclose(model.w.value, target, atol=1e-4)
    assert int(optimizer.step.value) == 15


def test_gradient_accumulation_with_optax_multisteps():
    model = Net()
    before = params_of(model)
    multi = optax.MultiSteps(optax.adam(1e-2), every_k_schedule=3)
    optimizer = Optimizer(model, multi)
    used = []
    for i in range(6):
        x, y = batch(10 + i)
        _, grads = gradients(model, x, y)
        used.append(core.to_pure_dict(grads))
        optimizer.update(grads)
        kernel = params_of(model)["layers"][0]["kernel"]
        changed = not np.allclose(kernel, before["layers"][0]["kernel"])
        assert changed == (i >= 2), i  # the first update happens on the third call
        if i == 2:
            after_first = params_of(model)
    assert int(optimizer.step.value) == 6
    # the same as optax's MultiSteps driven by hand, and as adam on the mean gradients
    assert_trees_close(params_of(model), by_hand(before, multi.gradient_transformation(), used))
    mean_of_three = jax.tree.map(lambda *g: sum(g) / 3, *used[:3])
    assert_trees_close(after_first, by_hand(before, optax.adam(1e-2), [mean_of_three]))


def test_learning_rate_schedules_apply_per_step():
    schedule = optax.piecewise_constant_schedule(0.1, {2: 0.1, 4: 10.0})  # 0.1, .., 0.01, .., 0.1
    model = Net()
    optimizer = Optimizer(model, optax.sgd(schedule))
    for step in range(6):
        before = params_of(model)
        _, grads = gradients(model, *batch(step))
        optimizer.update(grads)
        rate = float(schedule(step))
        expected = jax.tree.map(lambda p, g, r=rate: p - r * g, before, core.to_pure_dict(grads))
        assert_trees_close(params_of(model), expected)
    assert [float(schedule(s)) for s in (0, 2, 4)] == pytest.approx([0.1, 0.01, 0.1])


# -- functional API and jax.jit -------------------------------------------------------------
def test_split_merge_round_trip_keeps_sharing_and_continues_identically():
    model = Net()
    optimizer = Optimizer(model, optax.adam(1e-2))
    train(model, optimizer, steps=2)
    graphdef, state = core.split(optimizer)
    restored = core.merge(graphdef, state)
    assert restored is not optimizer and restored.model is not model
    assert isinstance(restored.model, Net)
    assert int(restored.step.value) == 2
    # both continue the same way from here
    train(model, optimizer, steps=3, seed=50)
    train(restored.model, restored, steps=3, seed=50)
    assert_trees_close(params_of(restored.model), params_of(model), rtol=0, atol=0)
    restored_opt = core.to_pure_dict(core.state(restored, OptState))
    assert_trees_close(restored_opt, core.to_pure_dict(core.state(optimizer, OptState)), 0, 0)


def test_model_and_optimizer_split_together_stay_shared():
    model = Net()
    optimizer = Optimizer(model, optax.sgd(0.1))
    graphdef, state = core.split((model, optimizer))
    n_model_leaves = len(core.state(model).flat_state())
    n_opt_only = len(core.state(optimizer, OptState).flat_state())
    assert len(state.flat_state()) == n_model_leaves + n_opt_only  # no copy of the model
    new_model, new_optimizer = core.merge(graphdef, state)
    assert new_optimizer.model is new_model


def test_train_step_under_jax_jit_equals_eager():
    tx = optax.adam(1e-2)
    eager_model = Net()
    eager_opt = Optimizer(eager_model, tx)
    model = Net()
    optimizer = Optimizer(model, tx)
    graphdef, state = core.split((model, optimizer))

    @jax.jit
    def train_step(state, x, y):
        model, optimizer = core.merge(graphdef, state)
        graphdef_m, params, rest = core.split(model, core.Param, ...)

        def loss_fn(params):
            m = core.merge(graphdef_m, params, rest)
            return loss_of(m, x, y), core.state(m, core.BatchStat)

        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        core.update(model, stats)
        optimizer.update(grads)
        return loss, core.split((model, optimizer))[1]

    losses = []
    for i in range(4):
        x, y = batch(i)
        loss, state = train_step(state, x, y)
        losses.append(float(loss))
        eager_loss, grads = gradients(eager_model, x, y)
        eager_opt.update(grads)
        assert float(loss) == pytest.approx(float(eager_loss), rel=1e-5)
    core.update((model, optimizer), state)
    assert int(optimizer.step.value) == 4
    assert_trees_close(params_of(model), params_of(eager_model), rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.running_mean.value, 0)  # BatchStat came back too


@settings(max_examples=20, deadline=None)
@given(
    hidden=st.integers(1, 6),
    depth=st.integers(1, 3),
    steps=st.integers(1, 4),
    split_at=st.integers(0, 4),
    seed=st.integers(0, 2**16),
)
def test_property_any_net_any_split_point_matches_optax(hidden, depth, steps, split_at, seed):
    """Training, with a split/merge round trip at any point, is adam applied by hand."""
    sizes = (3, *([hidden] * depth), 2)
    model = Net(sizes, seed=seed)
    before = params_of(model)
    tx = optax.adam(3e-2)
    optimizer = Optimizer(model, tx)
    used = []
    for i in range(steps):
        if i == split_at:
            optimizer = core.merge(*core.split(optimizer))
            model = optimizer.model
        x, y = batch(seed + i, dout=2)
        _, grads = gradients(model, x, y)
        used.append(core.to_pure_dict(grads))
        optimizer.update(grads)
    assert int(optimizer.step.value) == steps
    assert_trees_close(params_of(model), by_hand(before, tx, used), rtol=1e-5, atol=1e-6)


# -- errors ------------------------------------------------------------------------------
def _grads(model):
    return gradients(model, *batch(0))[1]


def test_error_grads_missing_and_extra_paths_are_named():
    model = Net()
    optimizer = Optimizer(model, optax.sgd(0.1))
    grads = _grads(model)
    del grads["layers"][1]["bias"]
    grads["extra"] = core.Param(jnp.zeros(1))
    with pytest.raises(TrainingError) as info:
        optimizer.update(grads)
    message = str(info.value)
    assert message.startswith("Optimizer.update(grads): the gradients do not match")
    assert "missing (1):\n  - layers/1/bias" in message
    assert "unexpected (1):\n  - extra" in message
    assert "wrt=Param" in message


def test_error_grads_of_another_model():
    model = Net()
    optimizer = Optimizer(model, optax.sgd(0.1))
    other = Dense(3, 2, jax.random.key(1))
    grads = core.state(other, core.Param)
    with pytest.raises(TrainingError) as info:
        optimizer.update(grads)
    assert str(info.value) == E.GRADS_FROM_ANOTHER_MODEL.format(
        found=2,
        model="Net",
        wrt="Param",
        expected="  - layers/0/kernel\n  - layers/0/bias\n  - layers/1/kernel\n  - layers/1/bias",
        got="  - kernel\n  - bias",
    )


def test_error_grads_of_a_model_of_another_size():
    model = Net((3, 8, 2))
    optimizer = Optimizer(model, optax.sgd(0.1))
    grads = core.state(Net((3, 5, 2)), core.Param)
    with pytest.raises(TrainingError) as info:
        optimizer.update(grads)
    assert str(info.value) == E.GRADS_SHAPES.format(
        count=3,
        paths="  - layers/0/kernel: (3, 8) -> (3, 5)\n  - layers/0/bias: (8,) -> (5,)\n"
        "  - layers/1/kernel: (8, 2) -> (5, 2)",
    )
    assert float(optimizer.step.value) == 0  # nothing happened


def test_error_update_with_another_model_object():
    model, other = Net(), Net()
    optimizer = Optimizer(model, optax.sgd(0.1))
    with pytest.raises(TrainingError, match="this optimizer was created for a Net model"):
        optimizer.update(other, _grads(other))


def test_error_grads_not_a_state():
    optimizer = Optimizer(Net(), optax.sgd(0.1))
    with pytest.raises(TrainingError) as info:
        optimizer.update((1, 2))
    assert str(info.value) == E.GRADS_NOT_A_STATE.format(type_name="tuple")
    with pytest.raises(TypeError, match=r"takes \(grads\) or \(model, grads\), got 3"):
        optimizer.update(1, 2, 3)


def test_error_model_changed_after_the_optimizer_was_made():
    model = Net()
    optimizer = Optimizer(model, optax.adam(0.1))
    model.layers.append(Dense(2, 2, jax.random.key(5)))
    with pytest.raises(TrainingError) as info:
        optimizer.update(_grads(model))
    message = str(info.value)
    assert message.startswith("Optimizer.update(): the parameters of the Net model changed")
    assert "unexpected (2):\n  - layers/2/kernel\n  - layers/2/bias" in message
    assert "Create a new Optimizer after changing the model" in message


def test_errors_at_construction():
    with pytest.raises(TrainingError) as info:
        Optimizer({"w": jnp.ones(2)}, optax.sgd(0.1))
    assert str(info.value) == E.NOT_A_MODULE.format(who="Optimizer", type_name="dict")
    with pytest.raises(TrainingError) as info:
        Optimizer(Net(), optax.sgd(0.1), wrt=core.Cache)
    assert str(info.value) == E.EMPTY_WRT.format(wrt="Cache", model="Net")
    with pytest.raises(TrainingError) as info:
        Optimizer(Net(), 0.1)
    assert str(info.value) == E.NOT_A_TRANSFORMATION.format(type_name="float")


class _Box:
    """A pytree node type optax states never use (to check the error for one)."""

    def __init__(self, x):
        self.x = x


jax.tree_util.register_pytree_node(_Box, lambda b: ((b.x,), None), lambda _, c: _Box(*c))


def test_error_optax_state_with_an_unknown_pytree_node():
    tx = optax.GradientTransformation(
        lambda params: (optax.EmptyState(), {"box": _Box(jnp.zeros(()))}),
        lambda updates, state, params=None: (updates, state),
    )
    with pytest.raises(TrainingError) as info:
        Optimizer(Net(), tx)
    assert str(info.value) == E.UNSUPPORTED_STATE_NODE.format(
        type_name="_Box", path="opt_state/1/box"
    )


def test_optax_state_keeps_its_own_tree_types():
    model = Net()
    optimizer = Optimizer(model, optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2)))
    optimizer.update(_grads(model))
    clip, (adam, _) = optimizer.opt_state
    assert type(adam) is optax.ScaleByAdamState
    assert isinstance(adam.mu["layers"][0]["kernel"], OptState)
    assert int(adam.count.value) == 1
