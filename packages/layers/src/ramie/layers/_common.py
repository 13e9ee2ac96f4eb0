"""Small helpers every layer uses: dtype promotion, ``rngs`` checking, error locations."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.nn import initializers

from ramie.core import Module, Rngs, RngStream

from . import _errors

default_kernel_init = initializers.lecun_normal()
default_bias_init = initializers.zeros

Dtype = Any
Array = jax.Array
PromoteDtype = Callable[..., tuple]  # promote(args, *, dtype=None, inexact=True) -> args
EMPTY: Mapping[str, Any] = MappingProxyType({})  # the default of the *_metadata keywords


def promote(args: tuple, dtype: Dtype | None = None, inexact: bool = True) -> tuple:
    """Cast every non-None array in ``args`` to ``dtype`` (by default their common dtype).

    With ``inexact=True`` an integer result type is promoted to a float, as
    Flax does, so that integer inputs to a float layer compute in float. This
    is the default ``promote_dtype`` hook of every layer: a layer calls
    ``promote_dtype(args, dtype=layer.dtype)`` (and ``inexact=False`` for
    Embed's table); pass your own function to control the promotion.

    >>> import jax.numpy as jnp
    >>> from ramie.layers import promote_dtype
    >>> [a.dtype.name for a in promote_dtype((jnp.ones(2, jnp.bfloat16), jnp.ones(2)))]
    ['float32', 'float32']
    """
    if dtype is None:
        dtype = jnp.result_type(*[a for a in args if a is not None])
        if inexact and not jnp.issubdtype(dtype, jnp.inexact):
            dtype = jnp.promote_types(jnp.float32, dtype)
    return tuple(None if a is None else jnp.asarray(a, dtype) for a in args)


def is_key(x: Any) -> bool:
    """True for a typed PRNG key or raw ``uint32`` key data of shape ``(2,)``."""
    if not isinstance(x, (jax.Array, np.ndarray)):
        return False
    dtype = x.dtype
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return True
    return dtype == jnp.uint32 and getattr(x, "shape", None) == (2,)


def as_rngs(rngs: Any, layer: str) -> Rngs:
    """``rngs`` as an Rngs: an Rngs passes through, a PRNG key is wrapped, else an error."""
    if isinstance(rngs, Rngs):
        return rngs
    if is_key(rngs):
        return Rngs(rngs)
    hint = rngs if isinstance(rngs, int) and not isinstance(rngs, bool) else 0
    found = f"{type(rngs).__name__} {rngs!r}"[:80]
    raise _errors.LayerTypeError(_errors.NOT_RNGS.format(layer=layer, found=found, hint=hint))


def as_stream(rngs: Any, name: str, layer: str) -> RngStream | None:
    """A new stream forked from ``rngs[name]`` (an Rngs, an RngStream or a key), or None."""
    if rngs is None:
        return None
    if isinstance(rngs, RngStream):
        return rngs.fork()
    if is_key(rngs):
        return RngStream(rngs, tag=name)
    return as_rngs(rngs, layer)[name].fork()


def module_path(layer: Module) -> str | None:
    """The attribute path of ``layer`` inside the outermost model on the call stack.

    Only used when raising: it walks the Python frames for ``self`` objects that
    are Modules and searches the outermost one that contains ``layer``.
    """
    roots = []
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, Module) and owner is not layer and owner not in roots:
            roots.append(owner)
        frame = frame.f_back
    for root in reversed(roots):
        for path, module in root.iter_modules():
            if module is layer and path:
                return "/".join(str(k) for k in path)
    return None


def describe(layer: Module) -> str:
    """``"Linear"``, or ``"Linear at 'encoder/proj'"`` when called inside a model."""
    path = module_path(layer)
    name = type(layer).__name__
    return f"{name} at '{path}'" if path else name


def as_tuple(x: Any) -> tuple:
    """``x`` as a tuple: an int (or other scalar) becomes a 1-tuple."""
    if isinstance(x, (list, tuple)):
        return tuple(x)
    return (x,)
