"""A ramie.layers plug-in (test fixture): registers ``ScaledLinear``."""

import jax
import jax.numpy as jnp

from ramie import core
from ramie.layers import hookimpl


class ScaledLinear(core.Module):
    """``scale * (x @ kernel + bias)`` with a learned kernel and bias and a fixed scale."""

    def __init__(self, in_features: int, out_features: int, *, scale: float = 1.0, rngs):
        init = jax.nn.initializers.lecun_normal()
        self.kernel = core.Param(init(rngs.params(), (in_features, out_features)))
        self.bias = core.Param(jnp.zeros((out_features,)))
        self.scale = scale

    def __call__(self, x):
        return self.scale * (x @ self.kernel + self.bias)


@hookimpl
def ramie_register_layers(registry):
    registry.register(ScaledLinear)
