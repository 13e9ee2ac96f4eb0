"""The seed's "Transforms" section, as written: a jitted train step and scan over layers."""

import jax
import jax.numpy as jnp
import numpy as np
from transform_models import MLP, SGD

from ramie import core
from ramie.transforms import Carry, jit, scan, value_and_grad, vmap


def test_seed_train_step_decreases_loss_and_counts_steps():
    model = MLP(2, 16, 10, rngs=core.Rngs(0))
    optimizer = SGD(model, lr=0.05)  # reference sharing, as Optimizer(model, tx)

    @jit
    def train_step(model, optimizer, x, y):
        def loss_fn(model: MLP):
            y_pred = model(x)
            return jnp.mean((y_pred - y) ** 2)

        loss, grads = value_and_grad(loss_fn)(model)
        optimizer.update(grads)  # in-place updates
        return loss

    x, y = jnp.ones((5, 2)), jnp.ones((5, 10))
    counts = int(model.dropout.rngs.default.count.value)
    losses = [float(train_step(model, optimizer, x, y)) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    assert int(optimizer.step.value) == 30
    assert optimizer.model is model
    # BatchNorm and Dropout state went all the way out of loss_fn and train_step.
    assert int(model.dropout.rngs.default.count.value) == counts + 30
    assert float(jnp.abs(model.bn.mean.value).sum()) > 0


def test_seed_scan_over_layers():
    @vmap(in_axes=0, out_axes=0)
    def create_model(key: jax.Array):
        return MLP(10, 32, 10, rngs=core.Rngs(key))

    keys = jax.random.split(jax.random.key(0), 5)
    model = create_model(keys)

    @scan(in_axes=(0, Carry), out_axes=Carry)
    def forward(model: MLP, x):
        x = model(x)
        return x

    x = jnp.ones((3, 10))
    y = forward(model, x)
    assert y.shape == (3, 10)
    assert model.linear1.kernel.value.shape == (5, 10, 32)
    assert np.all(np.asarray(model.bn.mean.value) != 0)
