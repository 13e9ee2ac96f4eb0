"""ramie.training through the facade under nn.jit: Optimizer, groups, EMA, metrics."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ramie import nn


class Classifier(nn.Module):
    def __init__(self, din: int = 4, classes: int = 3, *, rngs: nn.Rngs):
        self.linear1 = nn.Linear(din, 16, rngs=rngs)
        self.bn = nn.BatchNorm(16, rngs=rngs)
        self.linear2 = nn.Linear(16, classes, rngs=rngs)

    def __call__(self, x):
        return self.linear2(nn.relu(self.bn(self.linear1(x))))


def data(seed: int, n: int = 32):
    kx, ky = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (n, 4))
    labels = (x[:, 0] > 0).astype(jnp.int32) + (x[:, 1] > 0.5).astype(jnp.int32)
    return x, labels


def xent(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


@nn.jit
def train_step(model, optimizer, ema, x, labels):
    assert optimizer.model is model and ema.model is model  # sharing survives, inside too

    def loss_fn(model):
        logits = model(x)
        return xent(logits, labels), logits

    (loss, logits), grads = nn.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(grads)
    ema.update()
    return loss


def test_train_step_under_nn_jit_matches_eager_and_keeps_sharing():
    def make():  # sgd, not adam: linear1's bias (before BatchNorm) has a zero gradient up
        # to rounding, and adam would scale that rounding noise up to full-size steps
        model = Classifier(rngs=nn.Rngs(0))
        optimizer = nn.Optimizer(model, optax.sgd(0.1, momentum=0.9))
        return model, optimizer, nn.EMA(model, decay=0.9)

    model, optimizer, ema = make()
    eager_model, eager_opt, eager_ema = make()
    losses = []
    for i in range(5):
        x, labels = data(i)
        losses.append(float(train_step(model, optimizer, ema, x, labels)))
        eager = train_step.__wrapped__(eager_model, eager_opt, eager_ema, x, labels)
        assert losses[-1] == pytest.approx(float(eager), rel=1e-5)
    assert optimizer.model is model and ema.model is model
    assert int(optimizer.step.value) == 5
    jitted = jax.tree.leaves(nn.state((model, optimizer, ema)))
    eager = jax.tree.leaves(nn.state((eager_model, eager_opt, eager_ema)))
    for a, b in zip(jitted, eager, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_training_reduces_the_loss_and_the_ema_lags_behind():
    model = Classifier(rngs=nn.Rngs(1))
    optimizer = nn.Optimizer(model, optax.adam(3e-2))
    ema = nn.EMA(model, decay=0.5)
    x, labels = data(0, n=64)
    losses = [float(train_step(model, optimizer, ema, x, labels)) for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0]
    kernel, averaged = model.linear1.kernel.value, ema.averaged.linear1.kernel.value
    assert not np.allclose(kernel, averaged)
    assert np.abs(kernel - averaged).max() < 0.1  # decay 0.5 follows closely


def test_per_group_learning_rates_under_nn_jit():
    model = Classifier(rngs=nn.Rngs(2))
    optimizer = nn.Optimizer(
        model,
        {nn.PathContains("linear1"): optax.sgd(0.1), ...: optax.sgd(0.0)},
    )

    @nn.jit
    def step(optimizer, x, labels):  # the model is reached through the optimizer only
        grads = nn.grad(lambda m: xent(m(x), labels))(optimizer.model)
        optimizer.update(grads)
        return grads

    before = nn.clone(model)
    grads = step(optimizer, *data(3))
    np.testing.assert_allclose(
        model.linear1.kernel.value,
        before.linear1.kernel.value - 0.1 * grads["linear1"]["kernel"].value,
        rtol=1e-5,
        atol=1e-7,
    )
    np.testing.assert_array_equal(model.linear2.kernel.value, before.linear2.kernel.value)
    np.testing.assert_array_equal(model.bn.scale.value, before.bn.scale.value)


def test_metrics_accumulate_under_nn_jit_like_numpy():
    model = Classifier(rngs=nn.Rngs(3))
    model.eval()
    metrics = nn.metrics.MultiMetric(
        loss=nn.metrics.Average("loss"), accuracy=nn.metrics.Accuracy()
    )

    traces = []

    @nn.jit
    def eval_step(model, metrics, x, labels):
        traces.append(x.shape)  # runs when nn.jit traces, not on cached calls
        logits = model(x)
        metrics.update(loss=xent(logits, labels), logits=logits, labels=labels)
        return logits

    losses, correct = [], []
    for i in range(4):
        x, labels = data(10 + i, n=8 * (i + 1))
        logits = eval_step(model, metrics, x, labels)
        losses.append(float(xent(logits, labels)))
        correct.append(np.asarray(jnp.argmax(logits, -1) == labels))
    result = metrics.compute()
    assert float(result["loss"]) == pytest.approx(np.mean(losses), rel=1e-5)
    assert float(result["accuracy"]) == pytest.approx(np.concatenate(correct).mean(), rel=1e-6)
    assert traces == [(8, 4), (16, 4), (24, 4), (32, 4)]  # one per batch shape
    metrics.reset()
    eval_step(model, metrics, *data(0, n=8))  # same structure after reset: no new trace
    assert traces == [(8, 4), (16, 4), (24, 4), (32, 4)]
    assert int(metrics.accuracy.count.value) == 8


def test_optimizer_checkpoint_round_trip_through_msgpack():
    model = Classifier(rngs=nn.Rngs(4))
    optimizer = nn.Optimizer(model, optax.adam(1e-2))
    ema = nn.EMA(model)
    for i in range(3):
        train_step(model, optimizer, ema, *data(i))
    blob = nn.to_bytes(nn.state(optimizer))
    fresh_model = Classifier(rngs=nn.Rngs(99))
    fresh = nn.Optimizer(fresh_model, optax.adam(1e-2))
    nn.update(fresh, nn.from_bytes(nn.state(fresh), blob))
    assert int(fresh.step.value) == 3
    x, labels = data(7)
    train_step(model, optimizer, ema, x, labels)
    train_step(fresh_model, fresh, nn.EMA(fresh_model), x, labels)
    np.testing.assert_allclose(fresh_model.linear2.kernel.value, model.linear2.kernel.value)
    np.testing.assert_array_equal(fresh.step.value, optimizer.step.value)


def test_an_ensemble_of_optimizers_made_and_trained_under_nn_vmap():
    @nn.vmap(in_axes=0, out_axes=0)
    def create(key):
        model = nn.Linear(4, 3, rngs=nn.Rngs(key))
        return nn.Optimizer(model, optax.adam(3e-2))

    optimizers = create(jax.random.split(jax.random.key(0), 3))
    assert optimizers.model.kernel.value.shape == (3, 4, 3)
    assert optimizers.opt_state[0][1]["kernel"].value.shape == (3, 4, 3)  # adam's mu, stacked

    @nn.jit
    @nn.vmap(in_axes=(0, None, None))
    def step(optimizer, x, labels):
        loss, grads = nn.value_and_grad(lambda m: xent(m(x), labels))(optimizer.model)
        optimizer.update(grads)
        return loss

    x, labels = data(0)
    first = step(optimizers, x, labels)
    for _ in range(30):
        last = step(optimizers, x, labels)
    assert first.shape == (3,) and np.all(np.asarray(last) < np.asarray(first))
    np.testing.assert_array_equal(optimizers.step.value, [31, 31, 31])
    # each member is trained on its own: the same as one optimizer of that member alone
    member = nn.Linear(4, 3, rngs=nn.Rngs(jax.random.split(jax.random.key(0), 3)[1]))
    alone = nn.Optimizer(member, optax.adam(3e-2))

    @nn.jit
    def single(optimizer, x, labels):
        grads = nn.grad(lambda m: xent(m(x), labels))(optimizer.model)
        optimizer.update(grads)

    for _ in range(31):
        single(alone, x, labels)
    np.testing.assert_allclose(member.kernel.value, optimizers.model.kernel.value[1], atol=2e-5)


def test_optimizer_state_follows_the_sharding_of_the_parameters():
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    assert jax.device_count() == 8
    mesh = jax.make_mesh((8,), ("model",), axis_types=(jax.sharding.AxisType.Auto,))
    model = Classifier(rngs=nn.Rngs(5))
    column = NamedSharding(mesh, P(None, "model"))
    model.linear1.kernel.value = jax.device_put(model.linear1.kernel.value, column)
    optimizer = nn.Optimizer(model, optax.adam(1e-2))
    mu = optimizer.opt_state[0][1]["linear1"]["kernel"]
    assert mu.value.sharding.is_equivalent_to(column, 2)

    @nn.jit
    def step(optimizer, x, labels):
        loss, grads = nn.value_and_grad(lambda m: xent(m(x), labels))(optimizer.model)
        optimizer.update(grads)
        return loss

    x, labels = data(0)
    losses = [float(step(optimizer, x, labels)) for _ in range(5)]  # blocks on each step
    assert losses[-1] < losses[0]
    assert model.linear1.kernel.value.sharding.is_equivalent_to(column, 2)
    assert mu.value.sharding.is_equivalent_to(column, 2)
    assert int(optimizer.step.value) == 5
