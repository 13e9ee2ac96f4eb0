"""Models for the training tests, written with ramie.core only, plus optax by hand.

``Net`` has Params in a list of layers (int keys in its paths), a BatchStat
running mean updated on every training call, and a static attribute, so the
optimizer has to update exactly the parameters and leave the rest alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ramie import core


class Dense(core.Module):
    def __init__(self, din: int, dout: int, key: jax.Array):
        self.kernel = core.Param(jax.random.normal(key, (din, dout)) * din**-0.5)
        self.bias = core.Param(jnp.full((dout,), 0.1))

    def __call__(self, x):
        return x @ self.kernel + self.bias


class Net(core.Module):
    def __init__(self, sizes=(3, 8, 2), seed: int = 0):
        keys = jax.random.split(jax.random.key(seed), len(sizes) - 1)
        self.layers = [Dense(a, b, k) for a, b, k in zip(sizes[:-1], sizes[1:], keys, strict=True)]
        self.running_mean = core.BatchStat(jnp.zeros((sizes[0],)))
        self.activation = "tanh"

    def __call__(self, x):
        self.running_mean.value = 0.9 * self.running_mean.value + 0.1 * x.mean(0)
        for layer in self.layers[:-1]:
            x = jnp.tanh(layer(x))
        return self.layers[-1](x)


def batch(seed: int, n: int = 16, din: int = 3, dout: int = 2):
    kx, ky = jax.random.split(jax.random.key(seed))
    return jax.random.normal(kx, (n, din)), jax.random.normal(ky, (n, dout))


def loss_of(model, x, y):
    return jnp.mean((model(x) - y) ** 2)


def gradients(model, x, y):
    """(loss, grads as a State of Params) with plain jax.grad over split/merge."""
    graphdef, params, rest = core.split(model, core.Param, ...)

    def loss_fn(params):
        return loss_of(core.merge(graphdef, params, rest), x, y)

    return jax.value_and_grad(loss_fn)(params)


def by_hand(params: dict, tx: optax.GradientTransformation, grads_seq) -> dict:
    """optax applied to a pure dict of parameters, one update per gradient dict."""
    state = tx.init(params)
    for g in grads_seq:
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params


def params_of(model) -> dict:
    return core.to_pure_dict(core.state(model, core.Param))


def set_params(model, pure: dict) -> None:
    params = core.state(model, core.Param)
    core.replace_by_pure_dict(params, pure)
    core.update(model, params)


def assert_trees_close(a, b, rtol=1e-6, atol=1e-6) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert jnp.allclose(x, y, rtol=rtol, atol=atol), (x, y)
