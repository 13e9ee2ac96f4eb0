"""The benchmark's models, twice: as ramie Modules and as pure functions on dicts.

Both versions share the same math (the functions at the top), so a step differs
only in how parameters reach the compiled function: that is what
``overhead.py`` measures.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ramie import core

MOMENTUM = 0.99
EPS = 1e-5
RATE = 0.1


# -- shared math -------------------------------------------------------------------
def mse(out, y):
    return jnp.mean((out - y) ** 2)


def xent(logits, y):
    return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * y, axis=-1))


def batch_norm(x, scale, bias, mean, var):
    """Training-mode BatchNorm: normalise by the batch, return new running statistics."""
    axes = tuple(range(x.ndim - 1))
    m, v = x.mean(axes), x.var(axes)
    y = (x - m) / jnp.sqrt(v + EPS) * scale + bias
    return y, MOMENTUM * mean + (1 - MOMENTUM) * m, MOMENTUM * var + (1 - MOMENTUM) * v


def dropout(x, key):
    keep = jax.random.bernoulli(key, 1 - RATE, x.shape)
    return jnp.where(keep, x / (1 - RATE), 0)


def conv(x, kernel, bias):
    y = jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + bias


def avg_pool(x):
    return jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4


def _kernel(key, shape):
    return jax.nn.initializers.lecun_normal()(key, shape)


# -- ramie modules -------------------------------------------------------------------
class Linear(core.Module):
    def __init__(self, din: int, dout: int, rngs: core.Rngs):
        self.kernel = core.Param(_kernel(rngs.params(), (din, dout)))
        self.bias = core.Param(jnp.zeros((dout,)))

    def __call__(self, x):
        return x @ self.kernel.value + self.bias.value


class Conv(core.Module):
    def __init__(self, cin: int, cout: int, rngs: core.Rngs):
        self.kernel = core.Param(_kernel(rngs.params(), (3, 3, cin, cout)))
        self.bias = core.Param(jnp.zeros((cout,)))

    def __call__(self, x):
        return conv(x, self.kernel.value, self.bias.value)


class BatchNorm(core.Module):
    def __init__(self, n: int):
        self.scale = core.Param(jnp.ones((n,)))
        self.bias = core.Param(jnp.zeros((n,)))
        self.mean = core.BatchStat(jnp.zeros((n,)))
        self.var = core.BatchStat(jnp.ones((n,)))

    def __call__(self, x):
        y, self.mean.value, self.var.value = batch_norm(
            x, self.scale.value, self.bias.value, self.mean.value, self.var.value
        )
        return y


class Dropout(core.Module):
    def __init__(self, rngs: core.Rngs):
        self.rngs = rngs

    def __call__(self, x):
        return dropout(x, self.rngs.dropout())


class TinyMLP(core.Module):
    def __init__(self, rngs: core.Rngs):
        self.l1 = Linear(32, 32, rngs)
        self.l2 = Linear(32, 1, rngs)

    def __call__(self, x):
        return self.l2(jax.nn.relu(self.l1(x)))


class Block(core.Module):
    def __init__(self, rngs: core.Rngs):
        self.linear = Linear(64, 64, rngs)
        self.bn = BatchNorm(64)
        self.dropout = Dropout(rngs)

    def __call__(self, x):
        return self.dropout(jax.nn.relu(self.bn(self.linear(x))))


class DeepMLP(core.Module):
    def __init__(self, rngs: core.Rngs):
        self.blocks = [Block(rngs) for _ in range(24)]

    def __call__(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class CNN(core.Module):
    def __init__(self, rngs: core.Rngs):
        self.conv1 = Conv(1, 32, rngs)
        self.conv2 = Conv(32, 64, rngs)
        self.dense1 = Linear(3136, 256, rngs)
        self.dense2 = Linear(256, 10, rngs)

    def __call__(self, x):
        x = avg_pool(jax.nn.relu(self.conv1(x)))
        x = avg_pool(jax.nn.relu(self.conv2(x)))
        x = jax.nn.relu(self.dense1(x.reshape((x.shape[0], -1))))
        return self.dense2(x)


# -- raw JAX: the same models as pure functions on dicts ---------------------------
class RawModel:
    key = jax.random.key(7)
    loss = staticmethod(mse)


class RawTinyMLP(RawModel):
    def init(self, key):
        k1, k2 = jax.random.split(key)
        params = {
            "l1": {"kernel": _kernel(k1, (32, 32)), "bias": jnp.zeros(32)},
            "l2": {"kernel": _kernel(k2, (32, 1)), "bias": jnp.zeros(1)},
        }
        return params, {}

    def apply(self, params, stats, x, step):
        h = jax.nn.relu(x @ params["l1"]["kernel"] + params["l1"]["bias"])
        return h @ params["l2"]["kernel"] + params["l2"]["bias"], stats


class RawDeepMLP(RawModel):
    def init(self, key):
        params, stats = {}, {}
        for i, k in enumerate(jax.random.split(key, 24)):
            params[str(i)] = {
                "kernel": _kernel(k, (64, 64)),
                "bias": jnp.zeros(64),
                "scale": jnp.ones(64),
                "bn_bias": jnp.zeros(64),
            }
            stats[str(i)] = {"mean": jnp.zeros(64), "var": jnp.ones(64)}
        return params, stats

    def apply(self, params, stats, x, step):
        # Dropout keys as ramie's ``Rngs`` makes them (and Flax NNX's): the stream's key
        # folded with a counter that every dropout call advances (24 per step). Folding
        # in a constant layer index instead lets XLA fold part of each key derivation
        # away: a cheaper program to compile (~25 MiB less peak RSS), not the same model.
        new_stats = {}
        for i in range(24):
            p, s = params[str(i)], stats[str(i)]
            x = x @ p["kernel"] + p["bias"]
            x, mean, var = batch_norm(x, p["scale"], p["bn_bias"], s["mean"], s["var"])
            new_stats[str(i)] = {"mean": mean, "var": var}
            x = dropout(jax.nn.relu(x), jax.random.fold_in(self.key, step * 24 + i))
        return x, new_stats


class RawCNN(RawModel):
    loss = staticmethod(xent)

    def init(self, key):
        k = jax.random.split(key, 4)
        params = {
            "conv1": {"kernel": _kernel(k[0], (3, 3, 1, 32)), "bias": jnp.zeros(32)},
            "conv2": {"kernel": _kernel(k[1], (3, 3, 32, 64)), "bias": jnp.zeros(64)},
            "dense1": {"kernel": _kernel(k[2], (3136, 256)), "bias": jnp.zeros(256)},
            "dense2": {"kernel": _kernel(k[3], (256, 10)), "bias": jnp.zeros(10)},
        }
        return params, {}

    def apply(self, params, stats, x, step):
        x = avg_pool(jax.nn.relu(conv(x, **params["conv1"])))
        x = avg_pool(jax.nn.relu(conv(x, **params["conv2"])))
        x = x.reshape((x.shape[0], -1))
        x = jax.nn.relu(x @ params["dense1"]["kernel"] + params["dense1"]["bias"])
        return x @ params["dense2"]["kernel"] + params["dense2"]["bias"], stats
