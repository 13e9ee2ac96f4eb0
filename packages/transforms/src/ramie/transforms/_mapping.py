"""What vmap and pmap share: mapping a function of ramie objects over an axis.

``map_call`` extracts the objects, gives each leaf its axis (``in_axes``,
``StateAxes``), runs the function under a JAX mapping transform (``jax.vmap``
or ``jax.pmap``), and writes mutations back. ``out_axes`` may hold a
``StateAxes`` where the function returns an object it created, choosing the
output axis of each of its leaves by filter. With ``transform_metadata=
{PARTITION_NAME: name}``, the mapped axis is named in the ``sharding``
metadata of Variables (see ``_partition``).

>>> import jax, jax.numpy as jnp
>>> from ramie import core
>>> from ramie.transforms import StateAxes, vmap
>>> class Norm(core.Module):
...     def __init__(self, key):
...         self.scale = core.Param(jax.random.normal(key, (3,)))
...         self.count = core.BatchStat(jnp.array(0))
>>> keys = jax.random.split(jax.random.key(0), 4)
>>> norms = vmap(Norm, out_axes=StateAxes({core.Param: 0, ...: None}))(keys)
>>> norms.scale.value.shape, norms.count.value.shape  # one shared count
((4, 3), ())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from ramie.core import extend

from . import _axes, _errors, _partition
from . import _graphargs as ga
from ._axes import StateAxes


class Mapped(NamedTuple):
    """What the mapped body returns (a pytree; the out_axes given JAX are one of these too)."""

    graphdef: Any  # Static: the new GraphDef, or None when unchanged
    old: list  # new values at the paths the objects had
    added: list  # values of Variables the function added (``sow``), mapped over axis 0
    meta: Any  # Static: ``export``'s output marker
    payload: Any  # the user's output
    groups: tuple  # leaves of created objects under a StateAxes, one list per distinct axis


class MapStatic(NamedTuple):
    """Everything static about one mapped call (hashable when its parts are)."""

    name: str
    graphdef: Any
    inner_graphdef: Any  # ``graphdef`` with the mapped axis taken out of ``sharding``
    spec: Any
    v_axes: tuple
    names: tuple  # readable name per object, for messages
    out_axes: Any
    groups: tuple  # the distinct axes of the StateAxes in out_axes
    partition: Any  # the axis name for ``sharding`` metadata, or None


class _Scattered:
    """A created object whose leaves went to ``Mapped.groups`` (a leafless pytree)."""

    __slots__ = ("graphdef", "slots")

    def __init__(self, graphdef: Any, slots: tuple):
        self.graphdef = graphdef
        self.slots = slots  # per leaf: (group index, index in the group)


jax.tree_util.register_pytree_node(
    _Scattered, lambda s: ((), (s.graphdef, s.slots)), lambda aux, _: _Scattered(*aux)
)


def _is_spec(x: Any) -> bool:
    return x is None or isinstance(x, (int, StateAxes))


def _state_axes_in(out_axes: Any) -> tuple:
    """The distinct axes the ``StateAxes`` inside ``out_axes`` use, in first-seen order."""
    found: dict = {}
    for spec in jax.tree_util.tree_leaves(out_axes, is_leaf=_is_spec):
        if isinstance(spec, StateAxes):
            for axis in spec.axes:
                found.setdefault(axis, None)
    return tuple(found)


def _jax_out_axes(out_axes: Any) -> Any:
    """``out_axes`` as JAX takes it: a ``StateAxes`` covers no leaf (they moved to groups)."""
    return jax.tree_util.tree_map(
        lambda s: 0 if isinstance(s, StateAxes) else s, out_axes, is_leaf=_is_spec
    )


def make_inner(fun_ref: Callable, st: MapStatic, cell: dict) -> Callable:
    """The function JAX maps, for one static description of a call.

    ``cell["broadcast_changed"]`` receives the names of broadcast leaves the
    function replaced (for the error JAX raises about them).
    """

    def inner(values, leaves):
        traced = ga.call_traced(st.name, fun_ref(), st.inner_graphdef, st.spec, values, leaves)
        graphdef = traced.graphdef
        old, added = split_added(st.graphdef, graphdef, traced.values)
        cell["broadcast_changed"] = [
            f"'{ga.path_name(st.names, p)}'"
            for p, a, new, v in zip(st.graphdef.paths, st.v_axes, old, values, strict=True)
            if a is None and new is not v
        ]
        payload = traced.payload
        groups: tuple = tuple([] for _ in st.groups)
        if st.groups or st.partition is not None:
            payload = jax.tree_util.tree_map(
                lambda spec, sub: _place(spec, sub, st, groups),
                st.out_axes,
                payload,
                is_leaf=_is_spec,
            )
        return Mapped(ga.Static(graphdef), old, added, ga.Static(traced.meta), payload, groups)

    return inner


def _place(spec: Any, sub: Any, st: MapStatic, groups: tuple) -> Any:
    """One ``out_axes`` entry's output: created objects tagged and, under a StateAxes, scattered."""

    def each(x):
        if type(x) is not ga.NewObject:
            if isinstance(spec, StateAxes) and type(x) is not ga.Static:
                raise _errors.TransformArgumentError(_errors.STATE_AXES_ON_ARRAY)
            return x
        (obj,) = extend.unflatten(x.graphdef, list(x.values))
        fg = extend.flatten((obj,))
        axes = [
            spec.axis_for(p[1:], extend.leaf(r)) if isinstance(spec, StateAxes) else spec
            for p, r in zip(fg.paths, fg.refs, strict=True)
        ]
        if st.partition is not None:
            _partition.insert(fg.refs, axes, st.partition)
            fg = extend.flatten((obj,))
        if not isinstance(spec, StateAxes):
            return ga.NewObject(fg.graphdef, fg.values())
        slots = []
        for axis, value in zip(axes, fg.values(), strict=True):
            g = st.groups.index(axis)
            slots.append((g, len(groups[g])))
            groups[g].append(value)
        return _Scattered(fg.graphdef, tuple(slots))

    return jax.tree_util.tree_map(each, sub, is_leaf=_is_marker)


def _is_marker(x: Any) -> bool:
    return type(x) in (ga.NewObject, ga.Static)


def _gathered(payload: Any, groups: tuple) -> Any:
    """Put the leaves of scattered objects back (inverse of ``_place``)."""

    def back(x):
        if type(x) is _Scattered:
            return ga.NewObject(x.graphdef, [groups[g][i] for g, i in x.slots])
        return x

    return jax.tree_util.tree_map(back, payload, is_leaf=lambda x: type(x) is _Scattered)


def prepare(name: str, fun: Callable, in_axes: Any, out_axes: Any, metadata, args, kwargs):
    """``(static, ex, v_axes, l_axes)`` of a call: the static description and the inputs."""
    args, kwargs = _axes.bind_keywords(fun, args, kwargs)
    arg_axes = _axes.per_argument(name, in_axes, len(args))
    ex = ga.Extracted((args, kwargs))
    fg = ex.fg
    v_axes = _axes.value_axes(ex, arg_axes, transform=name)
    l_axes = _axes.plain_axes(args, kwargs, arg_axes)
    partition = _partition.name_of(metadata)
    inner_graphdef = fg.graphdef
    if partition is not None:
        inner_graphdef = _partition.stripped(fg, v_axes, partition)
    static = MapStatic(
        name,
        fg.graphdef,
        inner_graphdef,
        ex.spec,
        tuple(v_axes),
        tuple(ga.object_names(ex.spec, len(ex.objs))),
        out_axes,
        _state_axes_in(out_axes),
        partition,
    )
    return static, ex, v_axes, l_axes


def jax_out_axes(st: MapStatic, v_axes: list) -> Mapped:
    return Mapped(None, v_axes, 0, None, _jax_out_axes(st.out_axes), st.groups)


def finish(st: MapStatic, ex: ga.Extracted, out: Mapped) -> Any:
    """Write the mapped call's results back; return the user's output."""
    fg = ex.fg
    new_graphdef = out.graphdef.value
    values = join_added(fg.graphdef, new_graphdef, out.old, out.added)
    ga.propagate(fg, ex.objs, new_graphdef, values)
    payload = _gathered(out.payload, out.groups) if st.groups else out.payload
    return ga.import_(out.meta.value, payload, ex.objs)


def mapped_error(e: ValueError, cell: dict) -> Exception:
    """JAX's error about out_axes, explained when a broadcast leaf was replaced."""
    changed = cell.get("broadcast_changed")
    if changed and "out_axes" in str(e):
        return _errors.TransformArgumentError(
            _errors.BROADCAST_MUTATED.format(paths=", ".join(changed))
        )
    return e


def split_added(before: Any, after: Any, values: list):
    """Split values in ``after``'s order into (those at ``before``'s paths, the added ones)."""
    if after is None:
        return values, []
    position = {p: i for i, p in enumerate(after.paths)}
    old = [values[position[p]] for p in before.paths]
    known = set(before.paths)
    added = [v for p, v in zip(after.paths, values, strict=True) if p not in known]
    return old, added


def join_added(before: Any, after: Any, old: list, added: list):
    """Inverse of ``split_added``: values in ``after``'s order."""
    if after is None:
        return old
    by_path = dict(zip(before.paths, old, strict=True))
    it = iter(added)
    return [by_path[p] if p in by_path else next(it) for p in after.paths]
