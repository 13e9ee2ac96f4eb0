"""Pooling over the spatial axes of channels-last inputs, with ``lax.reduce_window``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import lax

from ._common import Array

Padding = str | Sequence[tuple[int, int]]


def pool(
    inputs: Array,
    init: Any,
    reduce_fn: Callable[[Array, Array], Array],
    window_shape: Sequence[int],
    strides: Sequence[int] | None,
    padding: Padding,
) -> Array:
    """Reduce each ``window_shape`` window of the spatial axes of ``(batch..., spatial..., C)``.

    ``padding`` is ``'SAME'``, ``'VALID'`` or one ``(low, high)`` pair per
    spatial axis; inputs without a batch axis are accepted.

    >>> import jax.numpy as jnp
    >>> from jax import lax
    >>> from ramie.layers import pool
    >>> pool(jnp.ones((1, 4, 4, 1)), 0.0, lax.add, (2, 2), (2, 2), "VALID")[0, :, :, 0].tolist()
    [[4.0, 4.0], [4.0, 4.0]]
    """
    window_shape = tuple(window_shape)
    strides = tuple(strides) if strides is not None else (1,) * len(window_shape)
    if len(strides) != len(window_shape):
        raise ValueError(
            f"pool: strides {strides} and window_shape {window_shape} must have one entry per "
            "spatial axis each."
        )
    n_batch = inputs.ndim - len(window_shape) - 1
    single = n_batch == 0
    if single:
        inputs, n_batch = inputs[None], 1
    if n_batch < 0:
        raise ValueError(
            f"pool: a {len(window_shape)}-d window needs inputs of shape (batch..., spatial..., "
            f"features); got shape {tuple(inputs.shape)}."
        )
    dims = (1,) * n_batch + window_shape + (1,)
    all_strides = (1,) * n_batch + strides + (1,)
    if not isinstance(padding, str):
        pads = tuple(tuple(p) for p in padding)
        if len(pads) != len(window_shape) or any(len(p) != 2 for p in pads):
            raise ValueError(
                f"pool: padding {padding!r} must be 'SAME', 'VALID' or one (low, high) pair per "
                f"spatial axis ({len(window_shape)})."
            )
        padding = ((0, 0),) * n_batch + pads + ((0, 0),)
    y = lax.reduce_window(inputs, init, reduce_fn, dims, all_strides, padding)
    return y[0] if single else y


def avg_pool(
    inputs: Array,
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: Padding = "VALID",
    count_include_pad: bool = True,
) -> Array:
    """Average over windows; with ``count_include_pad=False`` padding is left out of the mean.

    >>> import jax.numpy as jnp
    >>> from ramie.layers import avg_pool
    >>> avg_pool(jnp.arange(4.0).reshape(1, 4, 1), (2,), (2,))[0, :, 0].tolist()
    [0.5, 2.5]
    """
    y = pool(inputs, 0.0, lax.add, window_shape, strides, padding)
    if count_include_pad:
        return y / np.prod(window_shape)
    ones = jnp.ones(inputs.shape[:-1] + (1,), inputs.dtype)
    return y / pool(ones, 0.0, lax.add, window_shape, strides, padding)


def max_pool(
    inputs: Array,
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: Padding = "VALID",
) -> Array:
    """The maximum of each window.

    >>> import jax.numpy as jnp
    >>> from ramie.layers import max_pool
    >>> max_pool(jnp.arange(4.0).reshape(1, 4, 1), (2,), (2,))[0, :, 0].tolist()
    [1.0, 3.0]
    """
    return pool(inputs, -jnp.inf, lax.max, window_shape, strides, padding)


def min_pool(
    inputs: Array,
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: Padding = "VALID",
) -> Array:
    """The minimum of each window.

    >>> import jax.numpy as jnp
    >>> from ramie.layers import min_pool
    >>> min_pool(jnp.arange(4.0).reshape(1, 4, 1), (2,), (2,))[0, :, 0].tolist()
    [0.0, 2.0]
    """
    return pool(inputs, jnp.inf, lax.min, window_shape, strides, padding)
