"""Small models for the transforms tests, written with ramie.core only (no ramie.layers).

``Linear``, ``BatchNorm`` and ``Dropout`` follow the seed's semantics closely
enough to exercise what the transforms must propagate: Params, BatchStats
updated in training mode, and an RNG stream advanced on every call.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ramie import core


class Linear(core.Module):
    def __init__(self, din: int, dout: int, *, rngs: core.Rngs):
        self.kernel = core.Param(jax.random.normal(rngs.params(), (din, dout)) / din**0.5)
        self.bias = core.Param(jnp.zeros((dout,)))

    def __call__(self, x):
        return x @ self.kernel.value + self.bias.value


class BatchNorm(core.Module):
    def __init__(self, features: int, *, momentum: float = 0.9):
        self.scale = core.Param(jnp.ones((features,)))
        self.bias = core.Param(jnp.zeros((features,)))
        self.mean = core.BatchStat(jnp.zeros((features,)))
        self.var = core.BatchStat(jnp.ones((features,)))
        self.momentum = momentum
        self.use_running_average = False

    def __call__(self, x):
        if self.use_running_average:
            mean, var = self.mean.value, self.var.value
        else:
            mean, var = x.mean(0), x.var(0)
            m = self.momentum
            self.mean.value = m * self.mean.value + (1 - m) * mean
            self.var.value = m * self.var.value + (1 - m) * var
        return (x - mean) / jnp.sqrt(var + 1e-5) * self.scale.value + self.bias.value


class Dropout(core.Module):
    def __init__(self, rate: float, *, rngs: core.Rngs):
        self.rate = rate
        self.rngs = rngs
        self.deterministic = False

    def __call__(self, x):
        if self.deterministic or self.rate == 0:
            return x
        keep = jax.random.bernoulli(self.rngs.dropout(), 1 - self.rate, x.shape)
        return jnp.where(keep, x / (1 - self.rate), 0)


class MLP(core.Module):
    """The seed's MLP: Linear -> BatchNorm -> Dropout -> gelu -> Linear."""

    def __init__(self, din: int, dmid: int, dout: int, *, rngs: core.Rngs):
        self.linear1 = Linear(din, dmid, rngs=rngs)
        self.dropout = Dropout(0.1, rngs=rngs)
        self.bn = BatchNorm(dmid)
        self.linear2 = Linear(dmid, dout, rngs=rngs)

    def __call__(self, x):
        return self.linear2(jax.nn.gelu(self.dropout(self.bn(self.linear1(x)))))


class OptState(core.Variable):
    """Optimizer state: not a Param, so `grad` never differentiates it."""


class SGD(core.Module):
    """A minimal momentum-SGD optimizer holding a reference to its model (as the seed's)."""

    def __init__(self, model: core.Module, lr: float = 0.1, momentum: float = 0.9):
        self.model = model
        self.lr = lr
        self.beta = momentum
        params = core.state(model, core.Param)
        self.trace = [OptState(jnp.zeros_like(p.value)) for p in params.leaves()]
        self.step = OptState(jnp.array(0, dtype=jnp.int32))

    def update(self, grads: core.State) -> None:
        params = core.state(self.model, core.Param)
        new = {}
        for (path, p), g, t in zip(
            params.flat_state().items(), grads.leaves(), self.trace, strict=True
        ):
            t.value = self.beta * t.value + g.value
            new[path] = p.replace(p.value - self.lr * t.value)
        core.update(self.model, core.State.from_flat_state(new))
        self.step.value = self.step.value + 1
