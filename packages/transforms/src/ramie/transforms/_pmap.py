"""``pmap`` over ramie objects: ``vmap``'s semantics, one slice per device."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from . import _cache, _mapping


def pmap(
    fun: Callable | None = None,
    *,
    axis_name: Any = None,
    in_axes: Any = 0,
    out_axes: Any = 0,
    devices: Sequence[Any] | None = None,
    backend: str | None = None,
    axis_size: int | None = None,
    transform_metadata: Mapping[str, Any] | None = None,
) -> Any:
    """``jax.pmap`` for functions of ramie objects, with ``vmap``'s axes and write-back.

    Each device runs ``fun`` on its slice of the mapped arguments: ``in_axes``
    per positional argument (an int, ``None`` to give every device the whole
    value, or a ``StateAxes`` for an object), mutations written back into the
    caller's objects (a mapped leaf keeps its axis), objects created inside
    returned stacked along ``out_axes``; collectives over ``axis_name`` work
    inside (``jax.lax.pmean`` of gradients). The compiled function is cached
    per argument structure, so repeated calls do not retrace. Usable as
    ``@pmap`` or ``@pmap(...)``. ``static_broadcasted_argnums`` and
    ``donate_argnums`` are not taken: close over static values, and use
    ``jit``/``shard_map`` for donation.

    >>> import jax, jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import pmap
    >>> class Count(core.Module):
    ...     def __init__(self):
    ...         self.n = core.Variable(jnp.zeros(jax.local_device_count()))
    >>> @pmap(axis_name="d")
    ... def step(c, x):
    ...     c.n.value += 1
    ...     return jax.lax.psum(x, "d")
    >>> c = Count()
    >>> out = step(c, jnp.arange(float(jax.local_device_count())))
    >>> float(out[0]) == sum(range(jax.local_device_count())), c.n.value.tolist()[0]
    (True, 1.0)
    """
    if fun is None:
        return functools.partial(
            pmap,
            axis_name=axis_name,
            in_axes=in_axes,
            out_axes=out_axes,
            devices=devices,
            backend=backend,
            axis_size=axis_size,
            transform_metadata=transform_metadata,
        )
    options = (axis_name, tuple(devices) if devices is not None else None, backend, axis_size)

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        st, ex, v_axes, l_axes = _mapping.prepare(
            "pmap", fun, in_axes, out_axes, transform_metadata, args, kwargs
        )
        key = (st, tuple(l_axes), options)
        mapped, cell = _cache.traced_body((fun,), key, lambda refs: _compile(refs[0], key))
        try:
            out = mapped(ex.fg.values(), ex.leaves)
        except ValueError as e:
            raise _mapping.mapped_error(e, cell) from e
        return _mapping.finish(st, ex, out)

    return wrapper


def _compile(fun_ref: Callable, key: tuple) -> tuple:
    """The ``jax.pmap`` of one call structure, and its cell for error details."""
    st, l_axes, (axis_name, devices, backend, axis_size) = key
    cell: dict = {}
    mapped = jax.pmap(
        _mapping.make_inner(fun_ref, st, cell),
        axis_name=axis_name,
        in_axes=(list(st.v_axes), list(l_axes)),
        out_axes=_mapping.jax_out_axes(st, list(st.v_axes)),
        devices=devices,
        backend=backend,
        axis_size=axis_size,
    )
    return mapped, cell
