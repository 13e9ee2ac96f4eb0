"""The seed's "Transforms" section with ramie's own layers, through ``from ramie import nn``."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ramie import nn


class MLP(nn.Module):
    def __init__(self, din: int, dmid: int, dout: int, *, rngs: nn.Rngs):
        self.linear1 = nn.Linear(din, dmid, rngs=rngs)
        self.dropout = nn.Dropout(rate=0.1, rngs=rngs)
        self.bn = nn.BatchNorm(dmid, rngs=rngs)
        self.linear2 = nn.Linear(dmid, dout, rngs=rngs)

    def __call__(self, x: jax.Array):
        x = nn.gelu(self.dropout(self.bn(self.linear1(x))))
        return self.linear2(x)


def test_seed_train_step_with_nn_jit_and_value_and_grad():
    model = MLP(2, 16, 10, rngs=nn.Rngs(0))
    optimizer = nn.Optimizer(model, optax.adam(1e-2))  # reference sharing

    @nn.jit  # automatic state management
    def train_step(model, optimizer, x, y):
        def loss_fn(model: MLP):
            y_pred = model(x)
            return jnp.mean((y_pred - y) ** 2)

        loss, grads = nn.value_and_grad(loss_fn)(model)
        optimizer.update(grads)  # in-place updates
        return loss

    x, y = jnp.ones((5, 2)), jnp.ones((5, 10))
    mean_before = np.asarray(model.bn.mean.value)
    losses = [float(train_step(model, optimizer, x, y)) for _ in range(50)]
    assert losses[-1] < 0.5 * losses[0]
    assert int(optimizer.step.value) == 50
    assert optimizer.model is model
    assert optimizer.step.value.dtype == jnp.uint32
    assert not np.allclose(model.bn.mean.value, mean_before)  # BatchNorm state came out


def test_seed_scan_over_layers_with_nn_vmap_and_nn_scan():
    @nn.vmap(in_axes=0, out_axes=0)
    def create_model(key: jax.Array):
        return MLP(10, 32, 10, rngs=nn.Rngs(key))

    keys = jax.random.split(jax.random.key(0), 5)
    model = create_model(keys)

    @nn.scan(in_axes=(0, nn.Carry), out_axes=nn.Carry)
    def forward(model: MLP, x):
        x = model(x)
        return x

    x = jnp.ones((3, 10))
    y = forward(model, x)
    assert y.shape == (3, 10)
    assert model.linear1.kernel.value.shape == (5, 10, 32)
    assert model.bn.mean.value.shape == (5, 32)
    assert np.all(np.asarray(model.bn.mean.value) != 0)  # each layer's statistics moved
