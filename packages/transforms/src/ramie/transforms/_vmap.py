"""``vmap`` over ramie objects, and ``split_rngs`` to give each copy its own keys."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ramie import core

from . import _axes, _errors
from . import _graphargs as ga


class _Mapped(NamedTuple):
    """What the vmapped body returns (a pytree; ``out_axes`` is one of these too)."""

    graphdef: Any  # Static: the new GraphDef, or None when unchanged
    old: list  # new values at the paths the objects had
    added: list  # values of Variables the function added (``sow``), mapped over axis 0
    meta: Any  # Static: ``export``'s output marker
    payload: Any  # the user's output


def vmap(
    fun: Callable | None = None,
    *,
    in_axes: Any = 0,
    out_axes: Any = 0,
    axis_name: Any = None,
    axis_size: int | None = None,
    spmd_axis_name: Any = None,
) -> Any:
    """``jax.vmap`` for functions of ramie objects.

    ``in_axes`` gives per positional argument an int, ``None`` (broadcast) or,
    for an object, a ``StateAxes`` choosing axes per filter. Mutations are
    written back: a batched leaf keeps its axis, a broadcast leaf must stay
    unbatched. Objects created inside come back stacked along ``out_axes``
    (the seed's "create 5 MLPs" pattern). Usable as ``@vmap`` or ``@vmap(...)``.

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
        )

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        arg_axes = _axes.per_argument("vmap", in_axes, len(args))
        ex = ga.Extracted((args, kwargs))
        fg = ex.fg
        v_axes = _axes.value_axes(ex, arg_axes)
        l_axes = _axes.plain_axes(args, kwargs, arg_axes)
        changed_broadcast: list[str] = []
        added_axes: list = []

        def inner(values, leaves):
            traced = ga.call_traced("vmap", fun, fg.graphdef, ex.spec, values, leaves)
            old, added = _split_added(fg.graphdef, traced.graphdef, traced.values)
            names = ga.object_names(ex.spec, len(ex.objs))
            changed_broadcast[:] = [
                f"'{ga.path_name(names, p)}'"
                for p, a, new, v in zip(fg.paths, v_axes, old, values, strict=True)
                if a is None and new is not v
            ]
            added_axes[:] = [0] * len(added)
            return _Mapped(
                ga.Static(traced.graphdef), old, added, ga.Static(traced.meta), traced.payload
            )

        try:
            out = jax.vmap(
                inner,
                in_axes=(v_axes, l_axes),
                out_axes=_Mapped(None, v_axes, 0, None, out_axes),
                axis_name=axis_name,
                axis_size=axis_size,
                spmd_axis_name=spmd_axis_name,
            )(fg.values(), ex.leaves)
        except ValueError as e:
            if changed_broadcast and "out_axes" in str(e):
                raise _errors.TransformArgumentError(
                    _errors.BROADCAST_MUTATED.format(paths=", ".join(changed_broadcast))
                ) from e
            raise
        new_graphdef = out.graphdef.value
        ga.propagate(
            fg, ex.objs, new_graphdef, _join_added(fg.graphdef, new_graphdef, out.old, out.added)
        )
        return ga.import_(out.meta.value, out.payload, ex.objs)

    return wrapper


def _split_added(before: core.GraphDef, after: core.GraphDef | None, values: list):
    """Split values in ``after``'s order into (those at ``before``'s paths, the added ones)."""
    if after is None:
        return values, []
    position = {p: i for i, p in enumerate(after.paths)}
    old = [values[position[p]] for p in before.paths]
    known = set(before.paths)
    added = [v for p, v in zip(after.paths, values, strict=True) if p not in known]
    return old, added


def _join_added(before: core.GraphDef, after: core.GraphDef | None, old: list, added: list):
    """Inverse of ``_split_added``: values in ``after``'s order."""
    if after is None:
        return old
    by_path = dict(zip(before.paths, old, strict=True))
    it = iter(added)
    return [by_path[p] if p in by_path else next(it) for p in after.paths]


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
