"""Sequential: apply layers (or any callables) one after another."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ramie.core import Module

from . import _errors
from ._common import describe


def _arity_problem(fn: Callable, args: tuple, kwargs: dict) -> str | None:
    """Why ``fn(*args, **kwargs)`` cannot bind, or None when it can (or is unknowable)."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as e:
        return str(e)
    except ValueError:  # no signature (some builtins)
        return None
    return None


class Sequential(Module):
    """Call ``layers`` in order, each on the output of the one before.

    The first layer gets the arguments ``Sequential`` was called with; a layer
    that returns a tuple passes it on as positional arguments. Layers live in
    the list ``layers`` (paths ``layers/0``, ``layers/1``, ...); plain functions
    such as ``relu`` may sit between them.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import Linear, Sequential, relu
    >>> rngs = Rngs(0)
    >>> model = Sequential(Linear(2, 8, rngs=rngs), relu, Linear(8, 1, rngs=rngs))
    >>> model(jnp.ones((4, 2))).shape
    (4, 1)
    """

    def __init__(self, *layers: Callable[..., Any]):
        self.layers = list(layers)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.layers:
            return args[0] if len(args) == 1 else args
        for i, layer in enumerate(self.layers):
            try:
                out = layer(*args, **kwargs)
            except TypeError as e:
                problem = _arity_problem(layer, args, kwargs)
                if problem is None:
                    raise
                raise _errors.LayerError(
                    self._arity_message(i, layer, args, kwargs, problem)
                ) from e
            args, kwargs = (out if isinstance(out, tuple) else (out,)), {}
        return out

    def _arity_message(self, i: int, layer: Any, args: tuple, kwargs: dict, problem: str) -> str:
        given = f"{len(args)} positional argument(s)"
        if kwargs:
            given += f" and keyword(s) {sorted(kwargs)}"
        if i == 0:
            origin = "These are the arguments the Sequential itself was called with."
        else:
            prev = type(self.layers[i - 1]).__name__
            origin = f"They are the output of layer {i - 1} ({prev})."
        name = getattr(layer, "__name__", None) or type(layer).__name__
        return _errors.SEQUENTIAL_ARITY.format(
            where=describe(self), index=i, layer=name, given=given, origin=origin, error=problem
        )
