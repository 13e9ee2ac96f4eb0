"""The caches transforms keep, bounded and holding user objects only weakly.

``LRU`` is a small thread-safe mapping that forgets its least recently used
entry beyond ``maxsize``; ``Bounded`` is a dict (lock-free reads) that forgets
its oldest entry beyond ``maxsize``. ``ByObject`` maps live objects (e.g. a FlatGraph)
to values by identity, holding the objects weakly: an entry goes when its
object dies. Both register with ``ramie.core.extend.register_cache``, so
``ramie.core.clear_caches()`` (also ``ramie.transforms.clear_caches``)
empties them with core's own caches.

``traced_body`` keeps, per user function and per static description of a call
(structure, axes, ...), the one Python function handed to ``jax.lax.scan``,
``fori_loop``, ``switch``...: JAX caches what it traced by that function's
identity, so an unchanged call is traced once, not on every call. The body
refers to the user's function weakly, so the cache keeps nothing alive.

>>> calls = LRU(2)
>>> calls.put("a", 1); calls.put("b", 2); calls.get("a"); calls.put("c", 3)
1
>>> calls.get("b") is None, len(calls)
(True, 2)
"""

from __future__ import annotations

import collections
import inspect
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from ramie.core import (
    clear_caches,  # noqa: F401  (re-exported: it empties ours too)
    extend,
)


class LRU:
    """A bounded, thread-safe mapping; the least recently used entry goes first."""

    __slots__ = ("maxsize", "_items", "_lock", "__weakref__")

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        extend.register_cache(self)

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class Bounded(dict):
    """A dict of at most ``maxsize`` entries (the oldest goes first), for hot-path lookups.

    Reads are plain ``dict.get`` (atomic under the GIL); ``put`` takes a lock.

    >>> seen = Bounded(2)
    >>> for k in "abc":
    ...     seen.put(k, k.upper())
    >>> sorted(seen.items())
    [('b', 'B'), ('c', 'C')]
    """

    __slots__ = ("maxsize", "_lock", "__weakref__")

    def __init__(self, maxsize: int):
        super().__init__()
        self.maxsize = maxsize
        self._lock = threading.Lock()
        extend.register_cache(self)

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            while len(self) >= self.maxsize:
                dict.pop(self, next(iter(self)))
            self[key] = value


class Held(NamedTuple):
    """A ``ByObject`` entry: a weak reference to the key object, and its value."""

    ref: weakref.ref
    value: Any


class ByObject:
    """Values per live object, by identity; the object is held weakly.

    >>> class Key:
    ...     pass
    >>> k = Key(); table = ByObject()
    >>> table.put(k, "value"); table.get(k)
    'value'
    >>> del k; len(table)
    0
    """

    __slots__ = ("_items", "__weakref__")

    def __init__(self):
        self._items: dict[int, Held] = {}
        extend.register_cache(self)

    def get(self, obj: Any) -> Any:
        entry = self._items.get(id(obj))
        if entry is not None and entry.ref() is obj:
            return entry.value
        return None

    def put(self, obj: Any, value: Any) -> None:
        key, items = id(obj), self._items

        def forget(ref: weakref.ref) -> None:
            entry = items.get(key)
            if entry is not None and entry.ref is ref:
                items.pop(key, None)

        items[key] = Held(weakref.ref(obj, forget), value)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class _Weak(NamedTuple):
    """A user function held weakly, and a key naming it by identity."""

    ref: Callable
    key: Hashable


class _Body(NamedTuple):
    """A ``BODIES`` entry: the user functions (weakly) and the body made for them."""

    refs: tuple
    body: Any


def _weak(fun: Callable) -> _Weak | None:
    """A weak reference to ``fun`` and an identity key, or None if it cannot have one."""
    if inspect.ismethod(fun):  # a bound method is made anew on each attribute access
        return _Weak(weakref.WeakMethod(fun), (id(fun.__func__), id(fun.__self__)))
    try:
        return _Weak(weakref.ref(fun), id(fun))
    except TypeError:
        return None


#: Traced bodies of scan, fori_loop, while_loop, cond and switch.
BODIES = LRU(256)


def traced_body(funs: tuple[Callable, ...], static: Hashable, make: Callable[[tuple], Any]) -> Any:
    """The cached ``make(refs)`` for these user functions and this static description.

    ``refs[i]()`` gives ``funs[i]`` back (the body must call it through the
    reference, not hold it). ``static`` must describe everything else the body
    depends on; it must be hashable, or nothing is cached.
    """
    weak = [_weak(f) for f in funs]
    try:
        hash(static)
    except TypeError:
        weak.append(None)
    if any(w is None for w in weak):
        return make(tuple((lambda f=f: f) for f in funs))
    refs = tuple(w.ref for w in weak)
    key = (tuple(w.key for w in weak), static)
    hit = BODIES.get(key)
    if hit is not None and all(r() == f for r, f in zip(hit.refs, funs, strict=True)):
        return hit.body
    body = make(refs)
    BODIES.put(key, _Body(refs, body))
    return body
