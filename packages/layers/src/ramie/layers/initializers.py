"""Initializers: jax.nn.initializers under Flax NNX's names, plus ``zeros_init`` / ``ones_init``.

Every name of ``flax.nnx.initializers`` is here. ``zeros`` and ``ones`` are
initializers themselves; ``zeros_init()`` and ``ones_init()`` return them (the
form Flax uses for a default such as ``bias_init=zeros_init()``).

>>> import jax, jax.numpy as jnp
>>> from ramie.layers import initializers
>>> initializers.ones_init()(jax.random.key(0), (2,), jnp.float32).tolist()
[1.0, 1.0]
>>> initializers.lecun_normal()(jax.random.key(0), (3, 4)).shape
(3, 4)
"""

from __future__ import annotations

from typing import Any

from jax.nn.initializers import (
    Initializer,
    constant,
    delta_orthogonal,
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    kaiming_normal,
    kaiming_uniform,
    lecun_normal,
    lecun_uniform,
    normal,
    ones,
    orthogonal,
    truncated_normal,
    uniform,
    variance_scaling,
    xavier_normal,
    xavier_uniform,
    zeros,
)


def zeros_init() -> Any:
    """The initializer that returns zeros (``zeros`` itself), e.g. ``bias_init=zeros_init()``."""
    return zeros


def ones_init() -> Any:
    """The initializer that returns ones (``ones`` itself), e.g. ``scale_init=ones_init()``."""
    return ones


__all__ = [
    "Initializer",
    "constant",
    "delta_orthogonal",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "ones",
    "ones_init",
    "orthogonal",
    "truncated_normal",
    "uniform",
    "variance_scaling",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
    "zeros_init",
]
