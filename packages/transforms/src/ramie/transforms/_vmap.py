"""``vmap`` over ramie objects, and ``split_rngs`` to give each copy its own keys."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from ramie import core

from . import _graphargs as ga
from . import _mapping


def vmap(
    fun: Callable | None = None,
    *,
    in_axes: Any = 0,
    out_axes: Any = 0,
    axis_name: Any = None,
    axis_size: int | None = None,
    spmd_axis_name: Any = None,
    transform_metadata: Mapping[str, Any] | None = None,
) -> Any:
    """``jax.vmap`` for functions of ramie objects.

    ``in_axes`` gives per positional argument an int, ``None`` (broadcast) or,
    for an object, a ``StateAxes`` choosing axes per filter. Mutations are
    written back: a batched leaf keeps its axis, a broadcast leaf must stay
    unbatched. Objects created inside come back stacked along ``out_axes``
    (the seed's "create 5 MLPs" pattern); a ``StateAxes`` in ``out_axes``
    chooses, per filter, the axis of each leaf of such an object (``None``:
    one unbatched copy). Keyword arguments naming positional parameters take
    the ``in_axes`` of their position (as in Flax NNX); keyword-only ones are
    mapped over axis 0. ``transform_metadata={PARTITION_NAME: "layers"}``
    names the mapped axis in the ``sharding`` metadata of Variables: inserted
    at the output axis of created objects, taken out inside the function for
    mapped input objects. Usable as ``@vmap`` or ``@vmap(...)``.

    >>> import jax, jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import vmap
    >>> class Lin(core.Module):
    ...     def __init__(self, key):
    ...         self.w = core.Param(jax.random.normal(key, (3,)))
    >>> stack = vmap(lambda k: Lin(k))(jax.random.split(jax.random.key(0), 5))
    >>> stack.w.value.shape
    (5, 3)
    >>> vmap(lambda m, x: m.w.value @ x, in_axes=(0, None))(stack, jnp.ones(3)).shape
    (5,)
    """
    if fun is None:
        return functools.partial(
            vmap,
            in_axes=in_axes,
            out_axes=out_axes,
            axis_name=axis_name,
            axis_size=axis_size,
            spmd_axis_name=spmd_axis_name,
            transform_metadata=transform_metadata,
        )

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        st, ex, v_axes, l_axes = _mapping.prepare(
            "vmap", fun, in_axes, out_axes, transform_metadata, args, kwargs
        )
        cell: dict = {}
        try:
            out = jax.vmap(
                _mapping.make_inner(lambda: fun, st, cell),
                in_axes=(v_axes, l_axes),
                out_axes=_mapping.jax_out_axes(st, v_axes),
                axis_name=axis_name,
                axis_size=axis_size,
                spmd_axis_name=spmd_axis_name,
            )(ex.fg.values(), ex.leaves)
        except ValueError as e:
            raise _mapping.mapped_error(e, cell) from e
        return _mapping.finish(st, ex, out)

    return wrapper


# -- split_rngs ----------------------------------------------------------------
def _streams(objs: tuple, only: core.Filter) -> list[core.RngStream]:
    pred = core.to_predicate(only)
    found: dict[int, core.RngStream] = {}
    for obj in objs:
        if not isinstance(obj, core.Module):
            continue
        for path, module in obj.iter_modules():
            if isinstance(module, core.RngStream) and pred(path, module):
                found.setdefault(id(module), module)
    return list(found.values())


@contextlib.contextmanager
def _split(streams: list, splits: int | tuple[int, ...]):
    saved = [(s, s.key.value, s.count.value) for s in streams]
    try:
        for s, key, count in saved:
            base = jax.random.fold_in(key, count) if not count.shape else key
            s.key.value = jax.random.split(base, splits)
            s.count.value = jnp.zeros(s.key.value.shape, dtype=count.dtype)
        yield
    finally:
        for s, key, count in saved:
            s.key.value = key
            s.count.value = count + 1


def split_rngs(*objs: Any, splits: int | tuple[int, ...], only: core.Filter = ...) -> Any:
    """Split RNG streams into ``splits`` keys for a vmap/scan, restoring them afterwards.

    As a decorator, ``split_rngs(splits=5)(f)`` splits the streams of every
    Rngs found in ``f``'s arguments before the call; as a context manager,
    ``with split_rngs(rngs, splits=5):`` splits those of the given objects.
    ``only`` filters streams by path (e.g. ``PathContains("dropout")``). Each
    stream's key becomes ``splits`` distinct keys (so each vmapped copy
    draws different numbers) and its counter a matching array of zeros; on
    exit the key is restored and the counter advanced by one, so the next
    split differs.

    >>> import jax
    >>> from ramie import core
    >>> from ramie.transforms import split_rngs, vmap
    >>> rngs = core.Rngs(0)
    >>> @split_rngs(splits=4)
    ... @vmap(in_axes=(0,))
    ... def draw(rngs):
    ...     return jax.random.uniform(rngs.default())
    >>> len(set(draw(rngs).tolist()))
    4
    >>> rngs.default.key.value.shape
    ()
    """
    if objs:
        return _split(_streams(objs, only), splits)

    def decorator(fun: Callable) -> Callable:
        @functools.wraps(fun)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            found = ga.Extracted((args, kwargs)).objs
            with _split(_streams(found, only), splits):
                return fun(*args, **kwargs)

        return wrapper

    return decorator
