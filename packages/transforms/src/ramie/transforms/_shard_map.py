"""``shard_map`` for functions of ramie objects."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
from jax.sharding import PartitionSpec

from . import _axes, _errors
from . import _graphargs as ga


def shard_map(
    fun: Callable | None = None,
    *,
    mesh: jax.sharding.Mesh,
    in_specs: Any,
    out_specs: Any,
    check_vma: bool = True,
) -> Any:
    """``jax.shard_map`` where arguments may be ramie objects.

    ``in_specs`` gives per positional argument a ``PartitionSpec``: for an
    object it applies to every leaf, or use ``StateAxes({filter: spec, ...})``
    to choose per filter. Each leaf of an object keeps its spec on the way
    out, so mutations (e.g. BatchNorm statistics) are written back.

    >>> import jax, jax.numpy as jnp
    >>> from jax.sharding import PartitionSpec as P
    >>> from ramie import core
    >>> from ramie.transforms import shard_map
    >>> mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    >>> class Scale(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.array(2.0))
    >>> f = shard_map(lambda m, x: m.w.value * x, mesh=mesh, in_specs=(P(), P("data")),
    ...               out_specs=P("data"))
    >>> f(Scale(), jnp.arange(4.0)).tolist()
    [0.0, 2.0, 4.0, 6.0]
    """
    if fun is None:
        return functools.partial(
            shard_map, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=check_vma
        )

    @functools.wraps(fun)
    def wrapper(*args: Any) -> Any:
        specs = in_specs if isinstance(in_specs, tuple) else (in_specs,) * len(args)
        if len(specs) != len(args):
            raise _errors.TransformArgumentError(
                _errors.IN_AXES_ARITY.format(
                    transform="shard_map", given=len(specs), count=len(args)
                ).replace("in_axes", "in_specs")
            )
        ex = ga.Extracted((args, {}))
        fg = ex.fg
        v_specs = _axes.value_axes(ex, specs, transform="shard_map", option="in_specs")
        l_specs = []
        for arg, spec in zip(args, specs, strict=True):
            if not isinstance(spec, (PartitionSpec, type(None))) and not isinstance(
                arg, ga.GRAPH_TYPES
            ):
                raise _errors.TransformArgumentError(_errors.STATE_AXES_ON_ARRAY)
            flat = jax.tree_util.tree_leaves(arg, is_leaf=ga.is_graph)
            l_specs += [spec for x in flat if not isinstance(x, ga.GRAPH_TYPES)]

        def pure(values, leaves):
            return ga.call_traced("shard_map", fun, fg.graphdef, ex.spec, values, leaves)

        mapped = jax.shard_map(
            pure,
            mesh=mesh,
            in_specs=(v_specs, l_specs),
            out_specs=ga.Traced(
                graphdef=PartitionSpec(), values=v_specs, meta=PartitionSpec(), payload=out_specs
            ),
            check_vma=check_vma,
        )
        traced = mapped(fg.values(), ex.leaves)
        ga.propagate(fg, ex.objs, traced.graphdef, traced.values)
        return ga.import_(traced.meta, traced.payload, ex.objs)

    return wrapper
