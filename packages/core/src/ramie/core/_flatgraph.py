"""GraphDef and FlatGraph: what a walk of an object graph records, and its leaves.

A ``GraphDef`` is the hashable static structure; a ``FlatGraph`` pairs it with
a reference to every leaf (each Variable, and a ``_Slot`` for each raw array
attribute), so the leaves can be read and written in ``paths`` order without
walking the graph again. ``_graph`` (above this module) does the walking and
caches the FlatGraphs; this module only reads and writes through them,
including the kept list of leaf values that ``_valuecache`` keeps true.
"""

from __future__ import annotations

import collections
import itertools
import operator
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jax

from . import _codegen, _containers, _frames, _nodes, _reprs, _valuecache
from ._codegen import ARRAY as _ARRAY
from ._codegen import VAR as _VAR
from ._codegen import rebuild_tuple as _rebuild_tuple
from ._variables import Variable, _snapshot

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


# -- FlatGraph -----------------------------------------------------------------
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
        return self._kept() or self._read()

    def _kept(self) -> list | None:
        """The list this graph keeps, if nothing was written since it was made.

        ``_fastcall.caller`` inlines this: change both together.
        """
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
                self.write_all(list(values))  # a copy: the caller may change its list
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
        ``_fastcall.caller`` inlines the common case below: change both together.
        """
        refs = self.refs
        if type(values) is not list or len(values) != len(refs) or not self._all_variables:
            self.set_values(values)  # checks the length, copies, writes raw slots
            return
        # Writing an all-Variable graph's own leaves keeps the values written as its list
        # when no other write finished meanwhile (two consecutive tickets around the
        # write), and forgets every other graph's list (see _valuecache).
        first = _draw()
        try:
            # No strict=True: the lengths are equal (checked above), and a strict zip
            # costs ~12 ns per leaf more here, on every jitted step.
            _CONSUME(_starmap(_VALUE_SET, zip(refs, values)))  # noqa: B905
        except BaseException:
            self._keep(None, _draw())
            raise
        last = _draw()
        if last != first + 1:
            self._keep(None, last)
        elif self._cache is not None and len(_KEEPERS) == 1:  # _keep's common case, inlined
            self._cache = values  # the list before the stamp (see _kept)
            self._stamp = last
        else:
            self._keep(values, last)

    def _write_some(self, refs: list, values: Sequence, positions: Sequence[int]) -> None:
        """Write ``values`` into the Variables ``refs``, the leaves at ``positions``."""
        before = self._kept()
        first = _draw()
        try:
            _CONSUME(_starmap(_VALUE_SET, zip(refs, values)))  # noqa: B905 - callers check lengths
        except BaseException:
            self._keep(None, _draw())
            raise
        last = _draw()
        cache = None
        if last == first + 1 and before is not None and first == self._stamp + 1:
            cache = before.copy()  # a list handed out is never changed
            _CONSUME(_starmap(cache.__setitem__, zip(positions, values)))  # noqa: B905 - as above
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


# -- reading a GraphDef's leaf nodes ---------------------------------------------
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
