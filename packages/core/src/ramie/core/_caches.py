"""Core's caches: bounded, safe to use from several threads, and emptied on demand.

Every cache core keeps (flattened structures, generated builders, filter
predicates) is a ``BoundedCache``. Reads are plain dictionary lookups (atomic
under the GIL); inserting takes a lock and evicts the oldest entries beyond
the cache's documented size. ``clear_caches()`` empties all of them.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any

_ALL: list[BoundedCache] = []
#: Caches of other packages (``extend.register_cache``), emptied by ``clear_caches`` too;
#: weak references by their own id, each removed when its cache dies.
_EXTERNAL: dict[int, weakref.ref] = {}


def register_external(cache: Any) -> None:
    """Have ``clear_caches()`` call ``cache.clear()`` too, while ``cache`` lives."""
    pop = _EXTERNAL.pop  # bound now: the callback may run at exit, after globals are cleared
    ref = weakref.ref(cache, lambda r: pop(id(r), None))
    _EXTERNAL[id(ref)] = ref


class BoundedCache(dict):
    """A dict that holds at most ``size`` entries, dropping the oldest first.

    >>> from ramie.core._caches import BoundedCache
    >>> c = BoundedCache("example", 2)
    >>> for k in "abc":
    ...     _ = c.put(k, k.upper())
    >>> sorted(c)
    ['b', 'c']
    """

    __slots__ = ("name", "size", "_lock", "__weakref__")

    def __init__(self, name: str, size: int):
        super().__init__()
        self.name = name
        self.size = size
        self._lock = threading.Lock()
        _ALL.append(self)

    def put(self, key: Hashable, value: Any) -> Any:
        """Store ``value`` under ``key`` (evicting the oldest entry when full)."""
        with self._lock:
            while len(self) >= self.size:
                dict.pop(self, next(iter(self)))
            self[key] = value
        return value

    def get_or_make(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value under ``key``, made with ``make()`` and stored on a miss."""
        value = self.get(key)
        if value is None:
            value = self.put(key, make())
        return value

    def discard(self, key: Hashable) -> None:
        """Remove ``key`` if present."""
        with self._lock:
            dict.pop(self, key, None)


def clear_caches() -> None:
    """Empty every cache core keeps (flattened structures, generated builders, ...).

    Nothing is lost but time: each structure is walked again, and each builder
    generated again, the next time it is needed.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, clear_caches, flatten
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    >>> m = M(); before = flatten(m)
    >>> clear_caches()
    >>> flatten(m) is before
    False
    """
    for cache in _ALL:
        with cache._lock:
            dict.clear(cache)
    for ref in list(_EXTERNAL.values()):
        external = ref()
        if external is not None:
            external.clear()
