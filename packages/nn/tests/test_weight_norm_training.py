"""SpectralNorm and WeightNorm train under nn.jit with nn.Optimizer, as in Flax NNX."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ramie.nn as nn


class Net(nn.Module):
    def __init__(self, rngs):
        self.hidden = nn.WeightNorm(nn.Linear(3, 16, rngs=rngs), rngs=rngs)
        self.out = nn.SpectralNorm(nn.Linear(16, 1, rngs=rngs), n_steps=2, rngs=rngs)

    def __call__(self, x):
        return self.out(nn.relu(self.hidden(x)))


def data():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 3)), jnp.float32)
    return x, jnp.sin(x.sum(-1, keepdims=True))


def loss_fn(model, x, y):
    return jnp.mean((model(x) - y) ** 2)


@nn.jit
def train_step(model, optimizer, x, y):
    loss, grads = nn.value_and_grad(loss_fn)(model, x, y)
    optimizer.update(model, grads)
    return loss


def test_wrapped_layers_train_under_jit_like_eager():
    x, y = data()
    model, eager_model = Net(nn.Rngs(0)), Net(nn.Rngs(0))
    optimizer = nn.Optimizer(model, optax.adam(1e-2), wrt=nn.Param)
    eager_opt = nn.Optimizer(eager_model, optax.adam(1e-2), wrt=nn.Param)
    scales0 = model.hidden.scales["kernel"].value
    sigma0 = model.out.batch_stats["kernel"]["sigma"].value
    losses = []
    for _ in range(30):
        losses.append(float(train_step(model, optimizer, x, y)))
        eager = train_step.__wrapped__(eager_model, eager_opt, x, y)
        assert losses[-1] == pytest.approx(float(eager), rel=1e-4)
    assert losses[-1] < 0.7 * losses[0]
    assert not np.allclose(model.hidden.scales["kernel"].value, scales0)  # a trained Param
    assert float(model.out.batch_stats["kernel"]["sigma"].value) != float(sigma0)
    # the stats do not move in eval mode, under jit either
    model.eval()
    u = model.out.batch_stats["kernel"]["u"].value
    nn.jit(lambda m, x: m(x))(model, x)
    np.testing.assert_array_equal(model.out.batch_stats["kernel"]["u"].value, u)
