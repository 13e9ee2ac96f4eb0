"""Flattening object graphs into a GraphDef plus a flat list of leaves, and back.

``flatten(obj)`` walks Modules, Variables and containers once, records the
structure (with shared references and cycles) in a hashable ``GraphDef``, and
keeps a reference to every leaf: each Variable, and a slot for each raw
array attribute. The result is cached per root object and reused until the
structure version changes (see ``_containers``), so repeated ``split``/
``update`` calls and transforms never re-walk an unchanged graph. The
records themselves (``GraphDef``, ``FlatGraph``) live in ``_flatgraph``.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Hashable, Sequence
from typing import Any

import jax

from . import _codegen, _containers, _errors, _frames, _nodes, _statics
from ._caches import BoundedCache
from ._codegen import ARRAY as _ARRAY
from ._codegen import DICT as _DICT
from ._codegen import LIST as _LIST
from ._codegen import MODULE as _MODULE
from ._codegen import STATIC as _STATIC
from ._codegen import TUPLE as _TUPLE
from ._codegen import VAR as _VAR
from ._containers import Dict, List
from ._flatgraph import FlatGraph, GraphDef, _Slot, _TupleHolder
from ._module import Module, set_tracked
from ._variables import Variable, metadata_key

_ARRAY_NODE = _nodes.ARRAY_NODE
#: The node kind of each type seen. Bounded, emptied by clear_caches().
_KINDS = BoundedCache("node kinds", 1024)


def _kind_of(t: type) -> int:
    kind = _KINDS.get(t)
    if kind is None:
        if issubclass(t, Variable):
            kind = _VAR
        elif issubclass(t, Module):
            kind = _MODULE
        elif issubclass(t, list):
            kind = _LIST
        elif issubclass(t, dict):
            kind = _DICT
        elif issubclass(t, tuple):
            kind = _TUPLE
        elif issubclass(t, (*_containers.ARRAY_TYPES, jax.core.Tracer, jax.ShapeDtypeStruct)):
            kind = _ARRAY  # abstract arrays (eval_shape) are state like concrete ones
        else:
            kind = _STATIC
        _KINDS.put(t, kind)
    return kind


# -- flatten -------------------------------------------------------------------
#: Flattened structures per root (ids), at most 512; an entry goes when a root dies.
_CACHE = BoundedCache("structures", 512)


def _root_key(obj: Any) -> Hashable | None:
    if isinstance(obj, Module):
        return id(obj)
    if type(obj) is tuple and obj:
        for o in obj:
            if not isinstance(o, _ROOT_TYPES):
                return None
        return tuple(map(id, obj))
    return None


_ROOT_TYPES = (Module, Variable)
#: Verify mode's check of a cache hit (see ``_verify``); None when verify mode is off.
CHECK: list = [None]


def flatten(obj: Any) -> FlatGraph:
    """Walk ``obj`` (a Module, or any nesting of containers of objects) once.

    The result is cached per root while the structure is unchanged; a cache
    hit costs a dictionary lookup.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, flatten
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    >>> m = M()
    >>> flatten(m) is flatten(m)
    True
    >>> flatten(m).values()[0].shape
    (2,)
    """
    check = CHECK[0]
    if type(obj) is tuple:
        # A cached entry is evicted as soon as one of its roots dies, so a hit on the
        # ids is a hit on these very objects: no need to check their types first.
        fg = _CACHE.get(tuple(map(id, obj)))
        if fg is not None and fg.version == _containers._VERSION[0]:
            if check is None or check(fg):
                return fg
    key = _root_key(obj)
    if key is not None:
        fg = _CACHE.get(key)
        if fg is not None and fg.version == _containers._VERSION[0]:
            if check is None or check(fg):
                return fg
    fg = walk(obj)
    if key is None:
        return fg
    roots = obj if isinstance(obj, tuple) else (obj,)
    evict = _evictor(key)
    fg._roots = tuple(weakref.ref(r, evict) for r in roots)
    fg._tuple_root = isinstance(obj, tuple)
    _CACHE.put(key, fg)
    return fg


def walk(obj: Any) -> FlatGraph:
    """Walk ``obj`` afresh (no cache lookup, nothing stored): a new FlatGraph."""
    version = _containers._VERSION[0]
    ids: dict[int, int] = {}
    paths: list = []
    refs: list = []
    holder = [obj]
    try:
        node = _walk(obj, (), holder, 0, ids, paths, refs, [{}])
    except RecursionError:
        cycle = _container_cycle(obj)
        if cycle is None:
            raise
        raise _errors.GraphError(
            _errors.CONTAINER_CYCLE.format(
                path=_errors.format_path(cycle[0]), inner=_errors.format_path(cycle[1])
            )
        ) from None
    if paths and not paths[0]:
        raise _errors.GraphError(_errors.ROOT_IS_A_LEAF.format(type_name=type(obj).__name__))
    return FlatGraph(GraphDef(node, tuple(paths)), refs, version, ())


def _evictor(key):
    # Bound now: weakref callbacks can run at interpreter exit, after module
    # globals such as _CACHE have been cleared to None.
    discard = _CACHE.discard

    def evict(_ref):
        discard(key)

    return evict


def _walk(obj, path, holder, key, ids, paths, refs, opened):
    kind = _KINDS.get(type(obj)) or _kind_of(type(obj))
    if kind == _VAR:
        i = ids.get(id(obj))
        if i is not None:
            return _nodes.ref(i)
        ids[id(obj)] = len(ids)
        paths.append(path)
        refs.append(obj)
        return _nodes.var(type(obj), metadata_key(obj))
    if kind == _MODULE:
        i = ids.get(id(obj))
        if i is not None:
            return _nodes.ref(i)
        ids[id(obj)] = len(ids)
        d = set_tracked(obj)
        opened.append({})  # containers entered inside this Module (see the list/dict case)
        node = _nodes.module(
            type(obj),
            tuple((k, _walk(v, path + (k,), d, k, ids, paths, refs, opened)) for k, v in d.items()),
        )
        opened.pop()
        return node
    if kind == _ARRAY:
        paths.append(path)
        refs.append(_Slot(holder, key))
        return _ARRAY_NODE
    if kind == _LIST or kind == _DICT:
        # Numbered like Modules: a list/dict reached twice (e.g. held by two Modules)
        # is one shared container, and merge gives it back as one (as NNX does).
        i = ids.get(id(obj))
        if i is not None:
            if id(obj) in opened[-1]:  # entered again with no Module in between
                raise _errors.GraphError(
                    _errors.CONTAINER_CYCLE.format(
                        path=_errors.format_path(opened[-1][id(obj)]),
                        inner=_errors.format_path(path),
                    )
                )
            return _nodes.ref(i)
        ids[id(obj)] = len(ids)
        inside = opened[-1]
        inside[id(obj)] = path
        if kind == _LIST:
            if type(obj) is List:
                obj._ramie_tracked = True
            elif _in_tracked(holder):
                _untracked(obj, path, "list")
            node = _nodes.list_(
                tuple(
                    _walk(v, path + (i,), obj, i, ids, paths, refs, opened)
                    for i, v in enumerate(obj)
                ),
            )
        else:
            if type(obj) is Dict:
                obj._ramie_tracked = True
            elif _in_tracked(holder):
                _untracked(obj, path, "dict")
            node = _nodes.dict_(
                tuple(
                    (k, _walk(v, path + (k,), obj, k, ids, paths, refs, opened))
                    for k, v in obj.items()
                ),
            )
        del inside[id(obj)]
        return node
    if kind == _TUPLE:
        h = _TupleHolder(holder, key)
        return _nodes.tuple_(
            type(obj),
            tuple(_walk(v, path + (i,), h, i, ids, paths, refs, opened) for i, v in enumerate(obj)),
        )
    try:
        hash(obj)
    except TypeError:
        text = repr(obj)
        raise _errors.UnclassifiableAttributeError(
            _errors.UNCLASSIFIABLE.format(
                path=_errors.format_path(path),
                type_name=type(obj).__name__,
                found=text if len(text) < 60 else text[:57] + "...",
            )
        ) from None
    if not _statics.is_ok(type(obj)):
        _statics.refuse(obj, f"The attribute at '{_errors.format_path(path)}'")
    return _nodes.static(obj)


def _container_cycle(obj) -> tuple | None:
    """``(outer path, inner path)`` of a list/dict that contains itself, or None."""
    seen: set[int] = set()
    stack: dict[int, tuple] = {}

    def visit(x, path):
        if isinstance(x, Variable):
            return None
        if isinstance(x, Module):
            if id(x) in seen:
                return None
            seen.add(id(x))
            items = list(vars(x).items())
        elif isinstance(x, (list, tuple, dict)):
            if id(x) in stack:
                return stack[id(x)], path
            items = list(x.items()) if isinstance(x, dict) else list(enumerate(x))
        else:
            return None
        container = not isinstance(x, Module)
        if container:
            stack[id(x)] = path
        for k, v in items:
            found = visit(v, path + (k,))
            if found is not None:
                return found
        if container:
            del stack[id(x)]
        return None

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        return visit(obj, ())
    except RecursionError:
        return None
    finally:
        sys.setrecursionlimit(limit)


_TRACKED_HOLDERS = (List, Dict, _containers.Attributes)


def _in_tracked(holder) -> bool:
    """Whether a value held by ``holder`` is inside a Module (not a plain root container)."""
    while type(holder) is _TupleHolder:
        holder = holder.holder
    return type(holder) in _TRACKED_HOLDERS


def _untracked(obj, path, base):
    raise _errors.UntrackedContainerError(
        _errors.UNTRACKED_IN_GRAPH.format(
            type_name=type(obj).__name__, path=_errors.format_path(path), base=base
        )
    )


# -- unflatten -----------------------------------------------------------------
def unflatten(graphdef: GraphDef, leaves: Sequence) -> Any:
    """Rebuild new objects from ``graphdef`` and leaves given in ``graphdef.paths`` order.

    Leaves may be Variables (copied, keeping their kind and metadata) or raw
    values (wrapped in the Variable kind the GraphDef recorded).

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, flatten, unflatten
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    >>> fg = flatten(M())
    >>> m2 = unflatten(fg.graphdef, [jnp.zeros(2)])
    >>> float(m2.w.value.sum())
    0.0
    """
    if len(leaves) != len(graphdef.paths):
        raise _errors.GraphError(
            f"unflatten(): the GraphDef has {len(graphdef.paths)} leaves but "
            f"{len(leaves)} values were given."
        )
    build = _codegen.cached(("build", graphdef), lambda: _codegen.object_builder(graphdef.node))
    out = build(leaves)
    if _frames.ACTIVE[0]:
        frame = _frames.current_frame()
        if frame is not None:  # built inside a transform: its objects may be mutated there
            frame.own(_variables_of(out))
    return out


def _variables_of(obj: Any) -> list:
    if isinstance(obj, Variable):
        return [obj]
    return [r for r in walk(obj).refs if type(r) is not _Slot]
