"""The functional API: the boundary between objects and pure JAX.

``split`` turns objects into a static ``GraphDef`` plus ``State`` pytrees,
``merge`` builds new objects from them, ``update`` writes States back into
existing objects in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _codegen, _errors, _valuecache
from ._caches import BoundedCache
from ._filters import Filter, check_everything_last, filter_name, is_structural, to_predicate
from ._flatgraph import GraphDef, _Slot, leaf_kind, leaf_nodes
from ._graph import flatten, unflatten
from ._module import Module
from ._state import GraphState, State, _flat_of
from ._variables import Variable, _set_value, _snapshot, check_leaf

_MISSING = object()
#: Predicates of type filters (at most 256).
_PREDICATES = BoundedCache("predicates", 256)


def _predicates(filters: tuple) -> list:
    """Predicates for ``filters``; those of types (and tuples of types) are cached."""
    out = []
    for f in filters:
        cacheable = isinstance(f, type) or (
            type(f) is tuple and all(isinstance(i, type) for i in f)
        )
        p = _PREDICATES.get(f) if cacheable else None
        if p is None:
            p = to_predicate(f)
            if cacheable:
                _PREDICATES.put(f, p)
        out.append(p)
    return out


def _partition(fg, filters: tuple, exhaustive: bool, fn: str = "split") -> list[State]:
    if not filters:
        return fg.states()
    check_everything_last(filters, fn)
    preds = tuple(_predicates(filters))
    cacheable = all(map(is_structural, preds))
    if cacheable:
        assignment = fg.assignments.get(preds)
        if assignment is not None:
            return fg.states(assignment, len(preds))
    paths = fg.graphdef.paths
    assignment = []
    leftover = []
    for path, ref in zip(paths, fg.refs, strict=True):
        leaf = ref if isinstance(ref, Variable) else ref._value
        for k, pred in enumerate(preds):
            if pred(path, leaf):
                assignment.append(k)
                break
        else:
            assignment.append(-1)
            if exhaustive:
                kind = type(leaf).__name__ if isinstance(leaf, Variable) else "array"
                leftover.append(f"{_errors.format_path(path)} ({kind})")
    if leftover:
        raise _errors.FilterError(
            _errors.LEFTOVER_PATHS.format(
                filters=", ".join(filter_name(f) for f in filters),
                count=len(leftover),
                paths=_errors.format_paths(leftover),
            )
        )
    assignment = tuple(assignment)
    if cacheable:
        fg.assignments[preds] = assignment
    return fg.states(assignment, len(preds))


def split(obj: Any, *filters: Filter) -> tuple[Any, ...]:
    """Split ``obj`` into a GraphDef and one State per filter.

    With no filters, all state goes into one State. With filters, each leaf
    goes to the first filter that matches it; a leaf that no filter matches
    is an error naming its path (end with ``...`` to catch the rest).
    ``obj`` may be a Module or any tuple/list/dict nesting of objects.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, BatchStat, split
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    ...         self.m = BatchStat(jnp.zeros(2))
    >>> graphdef, params, rest = split(M(), Param, ...)
    >>> list(params), list(rest)
    (['w'], ['m'])
    """
    fg = flatten(obj)
    return (fg.graphdef, *_partition(fg, filters, True))


def state(obj: Any, *filters: Filter) -> Any:
    """The State of ``obj``; with filters, one State per filter (not exhaustive).

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, state
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    >>> state(M()).w.value.shape
    (2,)
    """
    states = _partition(flatten(obj), filters, False, "state")
    return states[0] if len(states) == 1 else tuple(states)


def graphdef(obj: Any) -> GraphDef:
    """The GraphDef of ``obj`` (cached while its structure is unchanged)."""
    return flatten(obj).graphdef


def _lookup(states: tuple, path: tuple):
    for s in states:
        d = s
        for k in path:
            if not isinstance(d, Mapping):
                d = _MISSING
                break
            d = d.get(k, _MISSING)
            if d is _MISSING:
                break
        if d is not _MISSING:
            return d
    return _MISSING


def merge(
    graphdef: GraphDef | GraphState, state: Mapping | None = None, /, *states: Mapping
) -> Any:
    """Build new objects from a GraphDef and the State(s) that ``split`` returned.

    Sharing and cycles recorded in the GraphDef are restored. The new objects
    own new Variables: changing them does not change the States.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, split, merge
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    >>> m = merge(*split(M()))
    >>> type(m).__name__
    'M'
    """
    if isinstance(graphdef, GraphState):  # merge(*unpack(obj, ...)): each carries the GraphDef
        parts = (graphdef,) if state is None else (graphdef, state, *states)
        for p in parts:
            if not isinstance(p, GraphState):
                raise _errors.GraphError(_errors.GRAPH_STATE_MIXED.format(found=type(p).__name__))
        graphdef, state, states = graphdef.graphdef, parts[0], parts[1:]
    if not isinstance(graphdef, GraphDef):
        raise _errors.GraphError(_errors.MERGE_NOT_GRAPHDEF.format(found=type(graphdef).__name__))
    if state is None:
        raise TypeError("merge() needs a State after the GraphDef: merge(graphdef, state).")
    all_states = (state, *states)
    whole = state if not states else _deep_merge(all_states)
    gather = _codegen.cached(("gather", graphdef), lambda: _codegen.state_gatherer(graphdef.paths))
    try:  # only the lookups: a missing or misplaced entry is a mismatch to explain
        leaves = gather(whole)
    except (KeyError, IndexError, TypeError):
        leaves = None
    if leaves is not None:
        try:
            return unflatten(graphdef, leaves)
        except _codegen.NotALeaf:  # a mapping where a leaf belongs; other errors propagate
            pass
    _explain_mismatch(graphdef, all_states)
    raise AssertionError("merge(): mismatch not explained")  # pragma: no cover


def _deep_merge(states: tuple) -> dict:
    out: dict = {}
    for s in states:
        _merge_into(out, s)
    return out


def _merge_into(out: dict, s: Mapping) -> None:
    for k, v in s.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            _merge_into(out[k], v)
        elif isinstance(v, dict):
            out[k] = sub = {}
            _merge_into(sub, v)
        else:
            out[k] = v


def _explain_mismatch(graphdef: GraphDef, all_states: tuple) -> None:
    """Raise the GraphError that says where the States and the GraphDef differ."""
    kinds = leaf_nodes(graphdef.node, [])
    for path, node in zip(graphdef.paths, kinds, strict=True):
        leaf = _lookup(all_states, path) if path else _MISSING
        where = _errors.format_path(path)
        if leaf is _MISSING:
            raise _errors.GraphError(
                _errors.MERGE_MISSING_LEAF.format(
                    expected=leaf_kind(node), path=where, count=len(all_states)
                )
            )
        if isinstance(leaf, Mapping):
            raise _errors.GraphError(
                _errors.MERGE_NOT_A_LEAF.format(
                    expected=leaf_kind(node), path=where, keys=list(leaf)
                )
            )
    known = set(graphdef.paths)
    for s in all_states:
        for path, leaf in _flat_of(s).items():
            if path not in known:
                raise _errors.GraphError(
                    _errors.MERGE_EXTRA_LEAF.format(
                        path=_errors.format_path(path), found=type(leaf).__name__
                    )
                )


def update(obj: Any, state: Mapping, /, *states: Mapping) -> None:
    """Write the values of one or more States into ``obj``'s leaves, in place.

    Paths the object does not have yet (e.g. Intermediates sown inside a
    transform) are added as new attributes of the Module that should hold them.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, state, update
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    >>> m = M()
    >>> s = state(m)
    >>> s.w.value = jnp.zeros(2)
    >>> update(m, s)
    >>> float(m.w.value.sum())
    0.0
    """
    try:
        _update(obj, state, states)
    finally:
        _valuecache.written()  # the leaves were written here, not through a FlatGraph


def _update(obj: Any, state: Mapping, states: tuple) -> None:
    fg = flatten(obj)
    refs = fg.refs
    if not states:
        # Fast path: the State has exactly the object's structure (as split gives it).
        gather = _codegen.cached(
            ("gather", fg.graphdef), lambda: _codegen.state_gatherer(fg.graphdef.paths)
        )
        try:
            leaves = gather(state)
        except (KeyError, IndexError, TypeError):
            leaves = None
        if leaves is not None:
            for ref, leaf, path in zip(refs, leaves, fg.graphdef.paths, strict=True):
                if type(leaf) is type(ref) and leaf._metadata is ref._metadata:
                    _set_value(ref, leaf._value)
                else:
                    _write_leaf(ref, leaf, path)
            return
    trie = fg.trie()
    added: list = []
    for s in (state, *states):
        _update_walk(s, trie, refs, (), added)
    for path, leaf in added:
        _add_leaf(obj, path, leaf)


def _update_walk(s: Mapping, trie: dict, refs: list, prefix: tuple, added: list) -> None:
    for k, leaf in s.items():
        t = trie.get(k)
        if t is None and isinstance(k, str) and k.isdigit():
            t = trie.get(int(k))
        if t is None:
            if isinstance(leaf, Mapping):
                for path, sub in _flat_of(leaf).items():
                    added.append((prefix + (k,) + path, sub))
            else:
                added.append((prefix + (k,), leaf))
        elif type(t) is dict:
            if not isinstance(leaf, Mapping):
                raise _errors.GraphError(
                    _errors.UPDATE_KIND_MISMATCH.format(
                        found=type(leaf).__name__,
                        path=_errors.format_path(prefix + (k,)),
                        expected="nested structure",
                    )
                )
            _update_walk(leaf, t, refs, prefix + (k,), added)
        else:
            _write_leaf(refs[t], leaf, prefix + (k,))


def _write_leaf(ref: Any, leaf: Any, path: tuple) -> None:
    if type(ref) is _Slot:
        value = leaf._value if isinstance(leaf, Variable) else leaf
        check_leaf(value, f"The State leaf at '{_errors.format_path(path)}'")
        ref.set(value)
    elif isinstance(leaf, Variable):
        if type(leaf) is not type(ref):
            raise _errors.GraphError(
                _errors.UPDATE_KIND_MISMATCH.format(
                    found=type(leaf).__name__,
                    path=_errors.format_path(path),
                    expected=type(ref).__name__,
                )
            )
        _set_value(ref, leaf._value)
        if leaf._metadata is not ref._metadata and leaf._metadata != ref._metadata:
            for name, item in leaf._metadata.items():
                setattr(ref, name, item)
    elif isinstance(leaf, Mapping):
        raise _errors.GraphError(
            _errors.UPDATE_KIND_MISMATCH.format(
                found="nested mapping", path=_errors.format_path(path), expected=type(ref).__name__
            )
        )
    else:
        check_leaf(leaf, f"The State leaf at '{_errors.format_path(path)}'")
        _set_value(ref, leaf)


def _child(parent: Any, key: Any) -> Any:
    if isinstance(parent, Module):
        return vars(parent).get(key, _MISSING) if isinstance(key, str) else _MISSING
    if isinstance(parent, (list, tuple)):
        return (
            parent[key] if isinstance(key, int) and -len(parent) <= key < len(parent) else _MISSING
        )
    if isinstance(parent, dict):
        return parent.get(key, _MISSING)
    return _MISSING


def _parent_of(obj: Any, path: tuple, op: str) -> Any:
    parent = obj
    for depth, k in enumerate(path[:-1]):
        parent = _child(parent, k)
        if parent is _MISSING:
            raise _errors.GraphError(
                _errors.UPDATE_NO_PARENT.format(
                    path=_errors.format_path(path), parent=_errors.format_path(path[: depth + 1])
                )
            )
    return parent


def _edit(obj: Any, path: tuple, op: str, value: Any = _MISSING) -> None:
    """Set (or, without ``value``, delete) the entry at ``path`` in its Module or dict."""
    parent = _parent_of(obj, path, op)
    key = path[-1]
    if isinstance(parent, Module):
        if value is _MISSING:
            delattr(parent, key)
        else:
            setattr(parent, key, value)
    elif isinstance(parent, dict):
        if value is _MISSING:
            del parent[key]
        else:
            parent[key] = value
    else:
        raise _errors.GraphError(
            _errors.UPDATE_NOT_SETTABLE.format(
                op=op,
                action="remove" if value is _MISSING else "add",
                path=_errors.format_path(path),
                container=type(parent).__name__,
            )
        )


def _add_leaf(obj: Any, path: tuple, leaf: Any) -> None:
    if not isinstance(leaf, Variable):
        check_leaf(leaf, f"The State leaf at '{_errors.format_path(path)}'")
    _edit(obj, path, "update", _snapshot(leaf) if isinstance(leaf, Variable) else leaf)


def pop(obj: Any, *filters: Filter) -> Any:
    """Remove the leaves matching ``filters`` from ``obj`` and return them as State(s).

    The usual use is collecting sown intermediates:

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Intermediate, pop
    >>> class M(Module):
    ...     def __call__(self, x):
    ...         self.sow(Intermediate, "h", x)
    ...         return x
    >>> m = M(); _ = m(jnp.ones(2))
    >>> popped = pop(m, Intermediate)
    >>> list(popped), hasattr(m, "h")
    (['h'], False)
    """
    if not filters:
        raise TypeError("pop() needs at least one filter, e.g. pop(model, Intermediate).")
    states = _partition(flatten(obj), filters, False, "pop")
    for s in states:
        for path in _flat_of(s):
            _edit(obj, path, "pop")
    return states[0] if len(states) == 1 else tuple(states)


def clone(obj: Any) -> Any:
    """A deep copy of ``obj`` with new Variables (and the same sharing structure).

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, clone
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    >>> m = M(); c = clone(m)
    >>> c.w is m.w
    False
    """
    return merge(*split(obj))
