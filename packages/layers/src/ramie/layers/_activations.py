"""PReLU (the one activation with a parameter), and activations by name for ``build``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
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


def _table() -> dict[str, Callable[..., Any]]:
    import jax.nn as nn

    names = (
        "celu elu gelu glu hard_sigmoid hard_silu hard_swish hard_tanh identity leaky_relu "
        "log_sigmoid log_softmax relu relu6 selu sigmoid silu soft_sign softmax softplus "
        "standardize swish"
    ).split()
    table = {name: getattr(nn, name) for name in names}
    table["tanh"] = jnp.tanh
    return table


#: Every activation by name, as ``Activation(name)`` and ``build`` configs look them up.
ACTIVATIONS: dict[str, Callable[..., Any]] = _table()


@dataclasses.dataclass(frozen=True)
class Activation:
    """An activation function named in a config: ``{"type": "relu"}`` or ``"relu"``.

    ``build`` makes these for activation names (the functions ``ramie.layers``
    exports, such as ``relu``, ``gelu``, ``leaky_relu``); extra config keys are
    keyword arguments (``{"type": "leaky_relu", "negative_slope": 0.2}``). It is
    a hashable static value, so a Sequential holding it splits and jits like one
    holding the plain function.

    >>> import jax.numpy as jnp
    >>> from ramie.layers import Activation
    >>> Activation("leaky_relu", (("negative_slope", 0.5),))(jnp.array([-2.0, 3.0])).tolist()
    [-1.0, 3.0]
    """

    name: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __call__(self, x: Array) -> Array:
        return ACTIVATIONS[self.name](x, **dict(self.kwargs))

    @property
    def __name__(self) -> str:  # what Sequential's messages and display show
        return self.name
