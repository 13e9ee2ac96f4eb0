"""A ramie.layers plug-in with one layer, ``Scale``: copy it to publish your own layers.

Once the distribution is installed, ramie finds it through its entry point (in
the group ``ramie.layers``) the first time the layer registry is used, and
``ramie.layers.build`` makes the layer by name like a built-in one:

>>> import jax.numpy as jnp
>>> from ramie import layers
>>> scale = layers.build({"type": "Scale", "features": 3}, rngs=0)
>>> scale(jnp.full((2, 3), 2.0)).tolist()
[[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]
"""

import jax
import jax.numpy as jnp

from ramie import core
from ramie.layers import hookimpl


class Scale(core.Module):
    """Multiplies each feature by a learned factor (initialised to ``init``, 1 by default)."""

    def __init__(self, features: int, *, init: float = 1.0, param_dtype=jnp.float32):
        self.features = features
        self.scale = core.Param(jnp.full((features,), init, param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x * self.scale


@hookimpl
def ramie_register_layers(registry):
    """The hook ramie.layers calls once: register every layer of this distribution."""
    registry.register(Scale)  # built as {"type": "Scale", ...}; or register(Scale, name=...)


__all__ = ["Scale", "ramie_register_layers"]
