"""PReLU, the one activation with a parameter (the others are jax.nn's own)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from ramie.core import Module, Param

from ._common import Array, Dtype, promote


class PReLU(Module):
    """Leaky ReLU with a learned slope: ``x if x >= 0 else negative_slope * x``.

    Parameter: the scalar ``negative_slope`` (initially ``negative_slope_init``).

    >>> import jax.numpy as jnp
    >>> from ramie.layers import PReLU
    >>> PReLU()(jnp.array([-2.0, 3.0])).tolist()
    [-0.019999999552965164, 3.0]
    """

    def __init__(
        self,
        negative_slope_init: float = 0.01,
        *,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        rngs: Any = None,
    ):
        self.negative_slope = Param(jnp.asarray(negative_slope_init, dtype=param_dtype))
        self.dtype = dtype
        self.param_dtype = param_dtype

    def __call__(self, inputs: Array) -> Array:
        slope = self.negative_slope.value
        if self.dtype is not None:
            inputs, slope = promote((inputs, slope), self.dtype)
        else:
            slope = jnp.asarray(slope, inputs.dtype)
        return jnp.where(inputs >= 0, inputs, slope * inputs)
