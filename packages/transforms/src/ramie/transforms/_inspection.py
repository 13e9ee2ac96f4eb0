"""Looking into and checking functions of ramie objects: ``make_jaxpr``, ``checkify``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
from jax.experimental import checkify as _checkify

from . import _argnums
from . import _graphargs as ga


def make_jaxpr(
    fun: Callable,
    *,
    static_argnums: int | Sequence[int] = (),
    axis_env: Sequence[tuple[Any, int]] | None = None,
    return_shape: bool = False,
) -> Callable:
    """``jax.make_jaxpr`` for functions of ramie objects (the objects are not changed).

    The jaxpr takes the objects' leaves and the other arguments' leaves, and
    returns the objects' leaves after the call followed by the function's
    output, so state updates are visible in it. ``return_shape=True`` also
    returns the output's shapes (objects created inside with
    ``jax.ShapeDtypeStruct`` leaves).

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import make_jaxpr
    >>> class Count(core.Module):
    ...     def __init__(self):
    ...         self.n = core.Variable(jnp.array(0))
    >>> def tick(c, k):
    ...     c.n.value += k
    ...     return c.n.value * 2
    >>> c = Count()
    >>> jaxpr, shape = make_jaxpr(tick, return_shape=True)(c, 3)
    >>> [a.shape for a in jaxpr.out_avals], shape.shape, int(c.n.value)  # new n, then output
    ([(), ()], (), 0)
    """

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nums = _argnums.at_call(
            (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums),
            len(args),
        )
        inner = _with_statics(fun, {i: args[i] for i in nums})
        args = tuple(a for i, a in enumerate(args) if i not in nums)
        ex = ga.Extracted((args, kwargs))
        fg = ex.fg

        def pure(values, leaves):
            return ga.call_traced("make_jaxpr", inner, fg.graphdef, ex.spec, values, leaves)

        out = jax.make_jaxpr(pure, axis_env=axis_env, return_shape=return_shape)(
            fg.values(), ex.leaves
        )
        if not return_shape:
            return out
        jaxpr, shape = out
        return jaxpr, ga.import_(shape.meta, shape.payload, ex.objs)

    return wrapper


def _with_statics(fun: Callable, statics: dict) -> Callable:
    """``fun`` with the static positional arguments (taken out) put back in place."""
    if not statics:
        return fun

    def bound(*args: Any, **kwargs: Any) -> Any:
        full = list(args)
        for i in sorted(statics):
            full.insert(i, statics[i])
        return fun(*full, **kwargs)

    return bound


def checkify(fun: Callable, errors: Any = _checkify.user_checks) -> Callable:
    """``jax.experimental.checkify.checkify`` for functions of ramie objects.

    The checkified function returns ``(error, output)``; mutations are written
    back. ``errors`` chooses the checks (``checkify.user_checks`` for
    ``checkify.check`` calls, ``checkify.float_checks``, ``index_checks``...).

    >>> import jax.numpy as jnp
    >>> from jax.experimental import checkify as ck
    >>> from ramie import core
    >>> from ramie.transforms import checkify, jit
    >>> class Acc(core.Module):
    ...     def __init__(self):
    ...         self.total = core.Variable(jnp.array(0.0))
    >>> def add(acc, x):
    ...     ck.check(x >= 0, "negative input {x}", x=x)
    ...     acc.total.value += x
    ...     return acc.total.value
    >>> acc = Acc()
    >>> err, total = jit(checkify(add))(acc, jnp.array(2.0))
    >>> err.get(), float(total), float(acc.total.value)
    (None, 2.0, 2.0)
    >>> err, _ = checkify(add)(acc, jnp.array(-1.0))
    >>> err.get()  # doctest: +ELLIPSIS
    'negative input -1.0 (`check` failed)...'
    """

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ex = ga.Extracted((args, kwargs))
        fg = ex.fg

        def pure(values, leaves):
            return ga.call_traced("checkify", fun, fg.graphdef, ex.spec, values, leaves)

        err, traced = _checkify.checkify(pure, errors=errors)(fg.values(), ex.leaves)
        ga.propagate(fg, ex.objs, traced.graphdef, traced.values)
        return err, ga.import_(traced.meta, traced.payload, ex.objs)

    return wrapper
