"""Low-rank adaptation: LoRA (a standalone or wrapping adapter), LoRALinear, LoRAParam."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
from jax.nn import initializers

from ramie.core import Module, Param

from ._common import EMPTY, Array, Dtype, as_rngs, promote
from ._linear import Linear

Initializer = Callable[..., Array]


class LoRAParam(Param):
    """The kind of LoRA's ``lora_a``/``lora_b``: filter on it to train only the adapters.

    >>> from ramie.core import Param
    >>> from ramie.layers import LoRAParam
    >>> issubclass(LoRAParam, Param)
    True
    """

    __slots__ = ()


default_a_initializer = initializers.he_uniform()
default_b_initializer = initializers.zeros


class LoRA(Module):
    """A low-rank update ``x @ lora_a @ lora_b``, added to ``base_module(x)`` when given.

    ``lora_a`` is ``(in_features, lora_rank)`` (he_uniform) and ``lora_b``
    ``(lora_rank, out_features)`` (zeros, so a fresh adapter changes nothing).
    Wrapping an existing layer is model surgery:
    ``model.linear = LoRA(..., base_module=model.linear, rngs=rngs)``.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import LoRA, Linear
    >>> base = Linear(3, 4, rngs=Rngs(0))
    >>> lora = LoRA(3, 2, 4, base_module=base, rngs=Rngs(1))
    >>> x = jnp.ones((1, 3))
    >>> bool(jnp.allclose(lora(x), base(x)))   # lora_b starts at zero
    True
    """

    def __init__(
        self,
        in_features: int,
        lora_rank: int,
        out_features: int,
        *,
        base_module: Module | None = None,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        a_initializer: Initializer = default_a_initializer,
        b_initializer: Initializer = default_b_initializer,
        lora_param_type: type[Param] = LoRAParam,
        rngs: Any,
        a_metadata: Mapping[str, Any] = EMPTY,
        b_metadata: Mapping[str, Any] = EMPTY,
    ):
        rngs = as_rngs(rngs, type(self).__name__)
        self.in_features = in_features
        self.out_features = out_features
        self.lora_rank = lora_rank
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.lora_param_type = lora_param_type
        self.base_module = base_module
        self.lora_a = lora_param_type(
            a_initializer(rngs.params(), (in_features, lora_rank), param_dtype), **a_metadata
        )
        self.lora_b = lora_param_type(
            b_initializer(rngs.params(), (lora_rank, out_features), param_dtype), **b_metadata
        )

    def __call__(self, x: Array, **kwargs: Any) -> Array:
        x, a, b = promote((x, self.lora_a.value, self.lora_b.value), self.dtype)
        out = x @ a @ b
        if self.base_module is not None:
            out = out + self.base_module(x, **kwargs)
        return out


class LoRALinear(Linear):
    """A Linear with a built-in LoRA adapter at ``lora``: ``linear(x) + lora(x)``.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import LoRALinear
    >>> layer = LoRALinear(3, 4, lora_rank=2, rngs=Rngs(0))
    >>> layer.kernel.shape, layer.lora.lora_a.shape, layer(jnp.ones((1, 3))).shape
    ((3, 4), (3, 2), (1, 4))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        lora_rank: int,
        lora_dtype: Dtype | None = None,
        lora_param_dtype: Dtype = jnp.float32,
        a_initializer: Initializer = default_a_initializer,
        b_initializer: Initializer = default_b_initializer,
        lora_param_type: type[Param] = LoRAParam,
        rngs: Any,
        a_metadata: Mapping[str, Any] = EMPTY,
        b_metadata: Mapping[str, Any] = EMPTY,
        **kwargs: Any,
    ):
        rngs = as_rngs(rngs, type(self).__name__)
        super().__init__(in_features, out_features, rngs=rngs, **kwargs)
        self.lora = LoRA(
            in_features,
            lora_rank,
            out_features,
            dtype=lora_dtype,
            param_dtype=lora_param_dtype,
            a_initializer=a_initializer,
            b_initializer=b_initializer,
            lora_param_type=lora_param_type,
            a_metadata=a_metadata,
            b_metadata=b_metadata,
            rngs=rngs,
        )

    def __call__(self, x: Array) -> Array:
        return super().__call__(x) + self.lora(x)
