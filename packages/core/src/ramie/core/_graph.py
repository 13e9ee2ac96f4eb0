"""Flattening object graphs into a GraphDef plus a flat list of leaves, and back.

``flatten(obj)`` walks Modules, Variables and containers once, records the
structure (with shared references and cycles) in a hashable ``GraphDef``, and
keeps a reference to every leaf: each Variable, and a slot for each raw
array attribute. The result is cached per root object and reused until the
structure version changes (see ``_containers``), so repeated ``split``/
``update`` calls and transforms never re-walk an unchanged graph.
"""

from __future__ import annotations

import collections
import itertools
import operator
import sys
import weakref
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax

from . import _codegen, _containers, _errors, _frames, _nodes, _reprs, _statics, _valuecache
from ._caches import BoundedCache
from ._codegen import ARRAY as _ARRAY
from ._codegen import DICT as _DICT
from ._codegen import LIST as _LIST
from ._codegen import MODULE as _MODULE
from ._codegen import STATIC as _STATIC
from ._codegen import TUPLE as _TUPLE
from ._codegen import VAR as _VAR
from ._codegen import rebuild_tuple as _rebuild_tuple
from ._containers import Dict, List
from ._module import Module, set_tracked
from ._variables import Variable, _snapshot, metadata_key

_ARRAY_NODE = _nodes.ARRAY_NODE
#: The node kind of each type seen. Bounded, emptied by clear_caches().
_KINDS = BoundedCache("node kinds", 1024)
_VALUE_SET = Variable.__dict__["_value"].__set__
_GET_VALUE = operator.attrgetter("_value")  # Variables' slot and _Slot's property alike
_CONSUME = collections.deque(maxlen=0).extend  # run an iterator for its side effects
# ``_starmap(f, zip(a, b))`` rather than ``map(f, a, b)`` for a C method-wrapper ``f``
# (a slot's ``__set__``, a list's ``__setitem__``): map builds an argument tuple per
# call, zip reuses one. Measured 26 against 38 ns per write for 339 leaves.
_starmap = itertools.starmap
_draw = _valuecache.draw
_KEEPERS = _valuecache.KEEPERS
_VERSION = _containers._VERSION  # [the current structure version]


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


# -- leaf slots ----------------------------------------------------------------
def _raw_setitem(holder, key, value) -> None:
    if isinstance(holder, list):
        list.__setitem__(holder, key, value)
    elif isinstance(holder, dict):
        dict.__setitem__(holder, key, value)
    else:
        holder[key] = value


def _weak(holder) -> Callable[[], Any]:
    """A weak reference to ``holder`` when it allows one (a strong one otherwise).

    Holders inside Modules (their attribute dicts, Lists, Dicts) are weakly
    referenced, so a cached structure never keeps a dead model alive, even one
    in a reference cycle. Plain containers given as roots are never cached.
    """
    try:
        return weakref.ref(holder)
    except TypeError:
        return lambda: holder


class _TupleHolder:
    """Lets a leaf inside a tuple be replaced by rebuilding the tuple in its parent."""

    __slots__ = ("_holder", "key")

    def __init__(self, holder, key):
        self._holder, self.key = _weak(holder), key

    @property
    def holder(self):
        return self._holder()

    def __getitem__(self, i):
        return self.holder[self.key][i]

    def __setitem__(self, i, value):
        holder = self.holder
        t = holder[self.key]
        items = list(t)
        items[i] = value
        _raw_setitem(holder, self.key, _rebuild_tuple(type(t), items))


class _Slot:
    """A raw array attribute: the container that holds it (weakly) and its key there."""

    __slots__ = ("_holder", "key")

    def __init__(self, holder, key):
        self._holder = holder if type(holder) is _TupleHolder else _weak(holder)
        self.key = key

    @property
    def holder(self):
        h = self._holder
        return h if type(h) is _TupleHolder else h()

    @property
    def _value(self):
        return self.holder[self.key]

    def set(self, value) -> None:
        _raw_setitem(self.holder, self.key, value)


# -- GraphDef ------------------------------------------------------------------
class GraphDef:
    """The static structure of an object graph: types, static attributes, sharing.

    Hashable and comparable, so it can be a ``jax.jit`` static argument or a
    cache key. It is also a pytree with no leaves, so it can be passed to a
    ``jax.jit`` function like any other argument. ``paths`` lists, in order,
    where each leaf of the matching State lives.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, split
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    >>> graphdef, state = split(M())
    >>> graphdef.paths
    (('w',),)
    >>> hash(graphdef) == hash(split(M())[0])
    True
    """

    __slots__ = ("node", "paths", "_hash")

    def __init__(self, node: tuple, paths: tuple):
        self.node = node
        self.paths = paths
        self._hash = hash(node)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        return type(other) is GraphDef and self._hash == other._hash and self.node == other.node

    def __repr__(self) -> str:
        return _reprs.graphdef(self)

    def apply(self, state, /, *states):
        """``graphdef.apply(state)(*args)`` returns ``(out, (graphdef, state))``, purely.

        The object is merged from the States, called (``.method(...)`` or
        ``[key]`` first reach a submodule or method) and split again; see
        ``ramie.core.call``.
        """
        return APPLY[0](self, state, *states)


#: Filled in by ``_graph_utils`` (above this module): GraphDef.apply's implementation.
APPLY: list = [None]


jax.tree_util.register_pytree_node(GraphDef, lambda g: ((), g), lambda g, _: g)


# -- flatten -------------------------------------------------------------------
class FlatGraph:
    """The flattened view of one or more objects: GraphDef, leaf paths and leaf refs.

    Returned (and cached) by ``flatten``. ``values()`` reads the current leaf
    values in ``paths`` order, ``set_values`` writes new ones back in place;
    neither walks the graph. ``is_current()`` says whether the structure is
    unchanged since the walk.
    """

    __slots__ = (
        "graphdef",
        "refs",
        "version",
        "assignments",
        "_roots",
        "_tuple_root",
        "_index",
        "_all_variables",
        "_writers",
        "_cache",
        "_stamp",
        "__weakref__",
    )

    def __init__(self, graphdef: GraphDef, refs: list, version: int, roots: tuple):
        self.graphdef = graphdef
        self.refs = refs
        self._all_variables = not any(type(r) is _Slot for r in refs)
        self.version = version
        self._roots = roots
        self._tuple_root = False
        self._index: dict | None = None
        # id(positions) -> (positions, the leaves at those positions): see ``write_at``.
        self._writers: dict[int, tuple] = {}
        # The leaf values as last read or written here, and the ticket that says since
        # when they are true (see _valuecache).
        self._cache: list | None = None
        self._stamp = 0
        # Filter predicates -> which State each leaf goes to (for structural filters).
        self.assignments: dict[tuple, tuple] = {}

    @property
    def paths(self) -> tuple:
        return self.graphdef.paths

    def is_current(self) -> bool:
        """True while no structural change happened anywhere since the walk."""
        return self.version == _containers._VERSION[0]

    def values(self) -> list:
        """The current value of every leaf (Variables unwrapped), in ``paths`` order."""
        return list(self._kept() or self._read())

    def current_values(self) -> list | None:
        """``values()`` for a call, or None when the structure changed since the walk.

        The list may be the one this graph keeps (see ``_valuecache``): pass it
        on, never change it. A jitted step that reads and writes the same
        leaves every call then reads none of them from the Variables.
        """
        if self.version != _VERSION[0]:
            return None
        cache = self._cache
        if cache is not None:  # _kept(), inlined: this runs on every jitted step
            ticket = _draw()
            stamp = self._stamp
            cache = self._cache
            if cache is not None and ticket == stamp + 1:
                self._stamp = ticket
                return cache
            self._cache = None
        return self._read()

    def _kept(self) -> list | None:
        """The list this graph keeps, if nothing was written since it was made."""
        if self._cache is None:
            return None
        # Ticket, then stamp, then list: the writers store the list before the stamp, so
        # a stamp that is current here comes with its own list (another thread may be
        # storing both right now).
        ticket = _draw()
        stamp = self._stamp
        cache = self._cache
        if cache is not None and ticket == stamp + 1:
            self._stamp = ticket
            return cache
        self._cache = None
        return None

    def _read(self) -> list:
        if not self._all_variables:
            return list(map(_GET_VALUE, self.refs))
        first = _draw()
        values = list(map(_GET_VALUE, self.refs))
        last = _draw()
        if last == first + 1:
            self._cache = values  # the list before the stamp (see _kept)
            self._stamp = last
            _valuecache.keep(self)
        return values

    def leaves(self) -> list:
        """Every leaf as a State would hold it: Variable copies and raw arrays."""
        return [_snapshot(r) if type(r) is not _Slot else r._value for r in self.refs]

    def states(self, assignment: tuple | None = None, count: int = 1) -> list:
        """The leaves as ``count`` new States; ``assignment[i]`` picks leaf i's State.

        ``None`` puts every leaf in one State; ``-1`` in an assignment drops a
        leaf. Variables are copied (the States do not alias the objects).
        """
        graphdef = self.graphdef

        def make():
            return _codegen.states_builder(
                graphdef.paths, leaf_classes(graphdef), assignment, count
            )

        states = _codegen.cached(("states", graphdef, assignment, count), make)(self.refs)
        frame = _frames.current_frame()
        if frame is not None:  # the copies are new objects, owned by the running transform
            leaves = (v for s in states for v in s.flat_state().values())
            frame.own(v for v in leaves if isinstance(v, Variable))
        return states

    def set_values(self, values: Sequence, positions: Sequence[int] | None = None) -> None:
        """Write ``values`` (in ``paths`` order) into the leaves, in place.

        With ``positions``, ``values[k]`` goes to leaf ``positions[k]`` and the
        other leaves are left alone.
        """
        refs = self.refs
        if positions is None:
            if len(values) != len(refs):
                raise ValueError(f"set_values(): expected {len(refs)} values, got {len(values)}")
            if self._all_variables:
                self._write_all(values)
                return
        else:
            if len(values) != len(positions):
                raise ValueError(
                    f"set_values(): {len(positions)} positions but {len(values)} values"
                )
            if self._all_variables:
                self._write_some([refs[i] for i in positions], values, positions)
                return
            refs = [refs[i] for i in positions]
        try:
            for r, v in zip(refs, values, strict=True):
                if type(r) is _Slot:
                    r.set(v)
                else:
                    _VALUE_SET(r, v)
        finally:
            _valuecache.written()

    def write_at(self, positions: tuple[int, ...], values: Sequence) -> None:
        """``set_values(values, positions)`` for a ``positions`` tuple that recurs.

        The leaves at ``positions`` are looked up once per tuple *object* (kept
        by identity, at most ``MAX_WRITERS`` per FlatGraph), so a caller that
        writes the same positions on every call (a jitted train step) pays
        only for the writes.
        """
        entry = self._writers.get(id(positions))
        if entry is None or entry[0] is not positions:
            if len(self._writers) >= MAX_WRITERS:
                self._writers.clear()
            refs = self.refs
            entry = (positions, [refs[i] for i in positions])
            self._writers[id(positions)] = entry
        if self._all_variables and len(values) == len(positions):
            self._write_some(entry[1], values, positions)
        else:
            self.set_values(values, positions)

    def write_all(self, values: list) -> None:
        """``set_values(values)`` that keeps ``values`` itself as this graph's list.

        For a caller that hands the list over (a jitted step's fresh output):
        it must not change it afterwards. Saves copying it on every call.
        """
        if self._all_variables and type(values) is list and len(values) == len(self.refs):
            self._write_all(values, values)
        else:
            self.set_values(values)

    # Writing an all-Variable graph's own leaves keeps the values written as its list
    # when no other write finished meanwhile (two consecutive tickets around the write),
    # and forgets every other graph's list (see _valuecache).
    def _write_all(self, values: Sequence, keep: list | None = None) -> None:
        first = _draw()
        try:
            _CONSUME(_starmap(_VALUE_SET, zip(self.refs, values, strict=True)))
        except BaseException:
            self._keep(None, _draw())
            raise
        last = _draw()
        if last != first + 1:
            self._keep(None, last)
        elif self._cache is not None and len(_KEEPERS) == 1:  # _keep's common case, inlined
            self._cache = list(values) if keep is None else keep  # the list before the stamp
            self._stamp = last
        else:
            self._keep(list(values) if keep is None else keep, last)

    def _write_some(self, refs: list, values: Sequence, positions: Sequence[int]) -> None:
        """Write ``values`` into the Variables ``refs``, the leaves at ``positions``."""
        before = self._kept()
        first = _draw()
        try:
            _CONSUME(_starmap(_VALUE_SET, zip(refs, values, strict=True)))
        except BaseException:
            self._keep(None, _draw())
            raise
        last = _draw()
        cache = None
        if last == first + 1 and before is not None and first == self._stamp + 1:
            cache = before.copy()  # a list handed out is never changed
            _CONSUME(_starmap(cache.__setitem__, zip(positions, values, strict=True)))
        self._keep(cache, last)

    def _keep(self, cache: list | None, stamp: int) -> None:
        kept = self._cache is not None  # so this graph is among the keepers already
        self._cache = cache  # the list before the stamp (see _kept)
        self._stamp = stamp
        if cache is not None and not kept:
            _valuecache.keep(self)
        if len(_KEEPERS) > (cache is not None):
            _valuecache.forget_others(self)

    def trie(self) -> dict:
        """The leaf positions as a nested dict: ``trie[k0][k1]... == position``."""
        if self._index is None:
            root: dict = {}
            for i, path in enumerate(self.graphdef.paths):
                if not path:
                    continue
                d = root
                for k in path[:-1]:
                    d = d.setdefault(k, {})
                d[path[-1]] = i
            self._index = root
        return self._index


#: How many distinct ``positions`` tuples ``FlatGraph.write_at`` remembers per
#: FlatGraph; beyond it the remembered ones are dropped and looked up again.
MAX_WRITERS = 16

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


def leaf_nodes(node, out: list) -> list:
    """The leaf nodes (Variables and arrays) of a GraphDef node tree, in paths order."""
    code = node.code
    if code == _VAR or code == _ARRAY:
        out.append(node)
    else:
        for c in _nodes.children(node):
            leaf_nodes(c, out)
    return out


def leaf_classes(graphdef: GraphDef) -> list:
    """Per leaf: its Variable class, or None for a raw array."""
    return [n.cls if n.code == _VAR else None for n in leaf_nodes(graphdef.node, [])]


def leaf_kind(node) -> str:
    """Describe what a GraphDef expects at a leaf (for error messages)."""
    return "a Variable" if node.code == _VAR else "an array"
