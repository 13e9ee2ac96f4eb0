"""Dropout: zero a random fraction of the inputs in training mode."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ramie.core import Module, Rngs, RngStream

from . import _errors
from ._common import Array, as_stream, describe, is_key


def check_rate(rate: Any, layer: str, arg: str = "rate") -> None:
    """Raise LayerError unless ``rate`` is a number in [0, 1]."""
    ok = isinstance(rate, numbers.Real) and not isinstance(rate, bool) and 0.0 <= rate <= 1.0
    if not ok:
        raise _errors.LayerError(_errors.BAD_DROPOUT_RATE.format(layer=layer, arg=arg, rate=rate))


class Dropout(Module):
    """Zero each input with probability ``rate`` and scale the rest by ``1 / (1 - rate)``.

    ``deterministic=True`` (set by ``model.eval()``) makes it the identity;
    ``model.train()`` turns it back on. The layer keeps its own RNG stream,
    forked at construction from ``rngs.dropout`` (or ``rngs.default``), so each
    call draws a new mask; a key or Rngs passed at call time takes precedence.
    ``broadcast_dims`` are axes that share one mask value.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import Dropout
    >>> drop = Dropout(0.5, rngs=Rngs(0))
    >>> y = drop(jnp.ones(1000))
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    >>> drop.eval(); bool((drop(jnp.ones(3)) == 1).all())
    True
    """

    def __init__(
        self,
        rate: float,
        *,
        broadcast_dims: Sequence[int] = (),
        deterministic: bool = False,
        rng_collection: str = "dropout",
        rngs: Rngs | RngStream | jax.Array | None = None,
    ):
        check_rate(rate, type(self).__name__)
        self.rate = rate
        self.broadcast_dims = tuple(broadcast_dims)
        self.deterministic = deterministic
        self.rng_collection = rng_collection
        self.rngs = as_stream(rngs, rng_collection, type(self).__name__)

    def __call__(
        self,
        inputs: Array,
        *,
        deterministic: bool | None = None,
        rngs: Rngs | RngStream | jax.Array | None = None,
    ) -> Array:
        if deterministic is None:
            deterministic = self.deterministic
        if deterministic or self.rate == 0.0:
            return inputs
        if self.rate == 1.0:
            return jnp.zeros_like(inputs)
        key = self._key(rngs)
        keep = 1.0 - self.rate
        shape = list(inputs.shape)
        for d in self.broadcast_dims:
            shape[d] = 1
        mask = jax.random.bernoulli(key, p=keep, shape=shape)
        # jnp.where (not lax.select) so that a mask drawn unsharded combines with inputs
        # sharded over an Explicit mesh axis; the values are those of select.
        return jnp.where(
            mask, inputs / jnp.asarray(keep, inputs.dtype), jnp.zeros((), inputs.dtype)
        )

    def _key(self, rngs: Any) -> jax.Array:
        if rngs is None:
            if self.rngs is None:
                raise _errors.RngStreamError(
                    _errors.NO_DROPOUT_RNG.format(where=describe(self), rate=self.rate)
                )
            return self.rngs()
        if isinstance(rngs, Rngs):
            return rngs[self.rng_collection]()
        if isinstance(rngs, RngStream):
            return rngs()
        if is_key(rngs):
            return (
                rngs
                if jax.dtypes.issubdtype(rngs.dtype, jax.dtypes.prng_key)
                else (jax.random.wrap_key_data(rngs))
            )
        raise _errors.LayerTypeError(
            f"{describe(self)}(x, rngs=...) takes an Rngs, an RngStream or a PRNG key; got "
            f"{type(rngs).__name__}. Pass rngs=jax.random.key(0) or rngs=Rngs(dropout=0)."
        )
