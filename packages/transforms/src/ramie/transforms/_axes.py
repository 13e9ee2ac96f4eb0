"""Axis specifications shared by vmap and scan: ``StateAxes``, ``Carry``, per-leaf axes."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax

from ramie import core
from ramie.core import extend

from . import _errors
from . import _graphargs as ga


class _CarryType:
    """Marks the carry in ``scan``'s ``in_axes``/``out_axes`` (``Carry``)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Carry"

    def __reduce__(self):
        return "Carry"


#: The axis marker of the carry in ``scan``: ``in_axes=(nn.Carry, 0)``, ``out_axes=nn.Carry``.
Carry = _CarryType()


class StateAxes:
    """Axes for an object's state chosen by filter: ``StateAxes({Param: 0, ...: None})``.

    Each leaf of the object takes the axis of the first filter that matches it
    (a Variable type, a tuple of them, ``...`` for everything, ``PathContains``,
    any callable filter). ``None`` broadcasts the leaf; ``Carry`` (in ``scan``)
    carries it from one iteration to the next.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import StateAxes
    >>> axes = StateAxes({core.BatchStat: None, ...: 0})
    >>> axes.axis_for(("mean",), core.BatchStat(jnp.zeros(2))), axes.axis_for(("w",), 1.0)
    (None, 0)
    """

    def __init__(self, mapping: Mapping[Any, Any]):
        self.filters = tuple(mapping.keys())
        self.axes = tuple(mapping.values())
        self._preds = tuple(core.to_predicate(f) for f in self.filters)

    def axis_for(self, path: tuple, leaf: Any) -> Any:
        for pred, axis in zip(self._preds, self.axes, strict=True):
            if pred(path, leaf):
                return axis
        raise _errors.TransformArgumentError(
            _errors.STATE_AXES_UNMATCHED.format(
                path=core.format_path(path),
                kind=type(leaf).__name__ if isinstance(leaf, core.Variable) else "array",
                filters=", ".join(map(repr, self.filters)),
            )
        )

    def __repr__(self) -> str:
        items = ", ".join(f"{f!r}: {a!r}" for f, a in zip(self.filters, self.axes, strict=True))
        return f"StateAxes({{{items}}})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, StateAxes)
            and self.filters == other.filters
            and self.axes == other.axes
        )

    def __hash__(self) -> int:
        return hash((self.filters, self.axes))


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def bind_keywords(fun: Callable, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Move keyword arguments that name positional parameters into their positions.

    So ``in_axes`` (one entry per position) applies to them whichever way they
    are passed, as in Flax NNX. A parameter skipped on the way takes its
    default. Keyword-only arguments stay keywords (``vmap`` maps them over
    axis 0, ``scan`` broadcasts them); so does everything when the signature
    cannot be read or a skipped parameter has no default (the call then
    raises Python's own ``TypeError``).

    >>> def f(a, b=2, c=3, *, d=4):
    ...     pass
    >>> bind_keywords(f, (1,), {"c": 5, "d": 6})
    ((1, 2, 5), {'d': 6})
    >>> bind_keywords(lambda a, b, c: None, (1,), {"c": 5})  # b has no default
    ((1,), {'c': 5})
    """
    if not kwargs:
        return args, kwargs
    try:
        params = inspect.signature(fun).parameters.values()
    except (TypeError, ValueError):
        return args, kwargs
    rest = [p for p in params if p.kind in _POSITIONAL][len(args) :]
    named = [i for i, p in enumerate(rest) if p.name in kwargs]
    if not named:
        return args, kwargs
    left = dict(kwargs)
    bound = list(args)
    for p in rest[: named[-1] + 1]:
        if p.name in left:
            bound.append(left.pop(p.name))
        elif p.default is not inspect.Parameter.empty:
            bound.append(p.default)
        else:
            return args, kwargs
    return tuple(bound), left


def per_argument(transform: str, axes: Any, nargs: int) -> tuple:
    """One axis spec per positional argument (``in_axes`` as given, checked)."""
    if isinstance(axes, (list, tuple)):
        if len(axes) != nargs:
            raise _errors.TransformArgumentError(
                _errors.IN_AXES_ARITY.format(transform=transform, given=len(axes), count=nargs)
            )
        return tuple(axes)
    return (axes,) * nargs


def value_axes(
    ex: ga.Extracted,
    arg_axes: Sequence,
    kwargs_axis: Any = 0,
    *,
    transform: str = "vmap",
    option: str = "in_axes",
) -> list:
    """The axis of every object leaf (in ``ex.fg.paths`` order) of an ``(args, kwargs)`` call.

    An object (or a Variable inside it) reachable from two arguments given
    different axes raises ``TransformArgumentError`` naming it and both axes.
    """
    positions = ga.arg_positions(ex.spec)
    appearances = []  # (object slot, flat position in the arguments, its spec)
    for flat, (pos, slot) in enumerate(zip(positions, ex.spec.slots, strict=True)):
        if slot >= 0:
            spec = arg_axes[pos] if isinstance(pos, int) else kwargs_axis
            appearances.append((slot, flat, spec))
    out = leaf_specs(ex.fg, appearances, _leaf_axis)
    check_aliasing(ex.fg, ex.objs, ex.spec, appearances, out, _leaf_axis, transform, option)
    return out


def _leaf_axis(spec: Any, path: tuple, ref: Any) -> Any:
    if isinstance(spec, StateAxes):
        return spec.axis_for(path, extend.leaf(ref))
    return spec


def leaf_specs(fg: extend.FlatGraph, appearances: list, leaf_spec) -> list:
    """Per leaf of ``ex.fg``: ``leaf_spec(spec, path in its object, ref)`` for the
    spec of the first argument that reaches it."""
    obj_spec: dict[int, Any] = {}
    for slot, _, spec in appearances:
        obj_spec.setdefault(slot, spec)
    return [
        leaf_spec(obj_spec[path[0]], path[1:], ref)
        for path, ref in zip(fg.paths, fg.refs, strict=True)
    ]


def check_aliasing(
    fg: extend.FlatGraph,
    objs: tuple,
    spec: tuple,
    appearances: list,
    specs: list,
    leaf_spec,
    transform: str,
    option: str,
) -> None:
    """Raise if an object or Variable is reached through arguments with different specs.

    ``appearances`` lists ``(object slot, flat position, spec)`` for every
    place in the arguments holding an object; ``specs`` is ``leaf_specs``'s result.
    """
    if len(appearances) < 2:
        return
    names = ga.position_names(spec)
    objects = ga.object_names(spec, len(objs))
    position = {id(r): k for k, r in enumerate(fg.refs) if isinstance(r, core.Variable)}
    first: dict[int, _Appearance] = {}
    for slot, pos, given in appearances:
        obj = objs[slot]
        inner = extend.flatten((obj,))  # a tuple root: a bare Variable is fine too
        wanted = [leaf_spec(given, p[1:], r) for p, r in zip(inner.paths, inner.refs, strict=True)]
        seen = first.setdefault(id(obj), _Appearance(pos, given, wanted))
        if seen.wanted != wanted:
            raise _aliased(
                transform,
                option,
                f"the same {type(obj).__name__}",
                f"{names[seen.position]} with {option} {seen.given!r}",
                f"{names[pos]} with {option} {given!r}",
            )
        # A Variable also reached through another argument (e.g. ``(model, model.kernel)``).
        for path, ref, want in zip(inner.paths, inner.refs, wanted, strict=True):
            k = position.get(id(ref))
            if k is None or want == specs[k]:
                continue
            _, *inside = path  # the first key is the object's index
            here = "/".join([names[pos], *map(str, inside)])
            there = fg.paths[k]
            raise _aliased(
                transform,
                option,
                f"the {type(ref).__name__} at '{ga.path_name(objects, there)}' (also '{here}')",
                f"{objects[there[0]]} gives it {specs[k]!r}",
                f"{names[pos]} gives it {want!r}",
            )


class _Appearance(NamedTuple):
    """Where an object was first met among the arguments, and the specs it got there."""

    position: int  # flat position among the arguments
    given: Any  # the spec given for that argument
    wanted: list  # the spec of each of its leaves


def _aliased(transform: str, option: str, what: str, first: str, second: str) -> Exception:
    return _errors.TransformArgumentError(
        _errors.ALIASED_SPECS.format(
            transform=transform, option=option, what=what, first=first, second=second
        )
    )


def plain_axes(args: tuple, kwargs: dict, arg_axes: Sequence, kwargs_axis: Any = 0) -> list:
    """The axis of every plain (non-object) leaf, expanding pytree prefixes like jax.vmap."""
    out: list = []
    for arg, axis in [*zip(args, arg_axes, strict=True), (kwargs, kwargs_axis)]:
        if isinstance(axis, StateAxes):
            if not isinstance(arg, ga.GRAPH_TYPES):
                raise _errors.TransformArgumentError(_errors.STATE_AXES_ON_ARRAY)
            continue
        flat = jax.tree_util.tree_leaves(arg, is_leaf=ga.is_graph)
        if _is_axis(axis):
            out.extend(axis for x in flat if not isinstance(x, ga.GRAPH_TYPES))
            continue
        expanded = jax.tree_util.tree_map(
            lambda a, sub: [a] * len(jax.tree_util.tree_leaves(sub, is_leaf=ga.is_graph)),
            axis,
            arg,
            is_leaf=_is_axis,
        )
        axes = [a for group in jax.tree_util.tree_leaves(expanded, is_leaf=_is_list) for a in group]
        out.extend(a for a, x in zip(axes, flat, strict=True) if not isinstance(x, ga.GRAPH_TYPES))
    return out


def _is_axis(x: Any) -> bool:
    return x is None or x is Carry or isinstance(x, int)


def _is_list(x: Any) -> bool:
    return isinstance(x, list)
