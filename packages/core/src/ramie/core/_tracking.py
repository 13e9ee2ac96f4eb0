"""The structure version and the containers that report structural changes.

ramie caches the flattened structure of object graphs (see ``_graph``). A cache
entry stays valid while the global structure version is unchanged. Any
structural change to an object that is part of a cached graph bumps the
version: assigning or deleting a Module attribute, mutating a list or dict held
by a Module, changing a Variable's metadata. Writing a new value into a
Variable is not a structural change and costs nothing here.

Objects only bump the version once they have been walked by a flatten (their
``_ramie_tracked`` flag is set), so building new modules never invalidates the
caches of others.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator

import jax
import numpy as np

_VERSION = [0]
# ``next`` on a count is atomic under the GIL: two threads bumping at once still
# give two new, never-reused versions (``+= 1`` could lose one).
_NEXT_VERSION = itertools.count(1).__next__


def bump() -> None:
    """Record that the structure of some cached object graph changed."""
    _VERSION[0] = _NEXT_VERSION()


def version() -> int:
    """The current structure version (grows by one per structural change)."""
    return _VERSION[0]


ARRAY_TYPES = (jax.Array, np.ndarray)


# -- transform frames ------------------------------------------------------------
class Frame:
    """One running (tracing) ramie transform: its name and the objects it owns.

    A transform pushes a Frame while it traces the user's function and adds
    the ids of the Variables it rebuilt from its arguments; Variables created
    while the frame is on top are added as they are made. Assigning a traced
    value to a Variable that the innermost frame does not own means the
    function mutates an object it captured instead of receiving it, which
    cannot be propagated out of the transform (see ``Variable.value``).
    """

    __slots__ = ("name", "owned")

    def __init__(self, name: str):
        self.name = name
        self.owned: set[int] = set()

    def own(self, objects) -> None:
        """Mark ``objects`` (e.g. ``flatten(rebuilt).refs``) as owned by this transform."""
        self.owned.update(map(id, objects))


class _ThreadState(threading.local):
    """Per-thread trace state: the stack of transforms tracing in this thread."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []


_LOCAL = _ThreadState()
#: How many frames are open in all threads together. Zero outside every transform,
#: so eager code pays one list-item test before skipping all frame bookkeeping.
ACTIVE = [0]
_ACTIVE_LOCK = threading.Lock()


def frames() -> list[Frame]:
    """The transforms tracing in the calling thread, innermost last (empty outside)."""
    return _LOCAL.frames


def current_frame() -> Frame | None:
    """The innermost transform tracing in the calling thread, or None."""
    if not ACTIVE[0]:
        return None
    stack = _LOCAL.frames
    return stack[-1] if stack else None


def __getattr__(name: str):
    # ``FRAMES`` is the calling thread's stack (kept for code written before frames
    # became per-thread).
    if name == "FRAMES":
        return _LOCAL.frames
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextlib.contextmanager
def transform_frame(name: str) -> Iterator[Frame]:
    """Run a block as transform ``name`` tracing the user's function.

    For authors of transforms: inside the block, assigning a traced value to
    a Variable the frame does not own raises ``CapturedMutationError``.
    Frames are per thread: functions traced at the same time in different
    threads never see each other's frames.

    >>> from ramie.core import Param, transform_frame
    >>> with transform_frame("jit") as frame:
    ...     p = Param(1.0)  # made inside: owned
    ...     frame.owned == {id(p)}
    True
    """
    frame = Frame(name)
    stack = _LOCAL.frames
    stack.append(frame)
    with _ACTIVE_LOCK:
        ACTIVE[0] += 1
    try:
        yield frame
    finally:
        with _ACTIVE_LOCK:
            ACTIVE[0] -= 1
        stack.remove(frame)


def owned_by_frame(obj) -> None:
    """Record that ``obj`` was made inside the innermost transform of this thread."""
    stack = _LOCAL.frames
    if stack:
        stack[-1].owned.add(id(obj))


def track(value):
    """Return ``value`` with every plain list/dict in it (outside Modules) tracked."""
    t = type(value)
    if t is list:
        return List(value)
    if t is dict:
        return Dict(value)
    if t is tuple:
        items = tuple(track(v) for v in value)
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return items
    return value


def _bumps(name):
    base = getattr(list if name in _LIST_METHODS else dict, name)

    def method(self, *args, **kwargs):
        if self._ramie_tracked:
            bump()
        return base(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = base.__doc__
    return method


_LIST_METHODS = frozenset(
    ["__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend", "insert"]
    + ["pop", "remove", "clear", "sort", "reverse"]
)
_DICT_METHODS = frozenset(
    ["__setitem__", "__delitem__", "__ior__", "pop", "popitem", "clear", "update", "setdefault"]
)


class List(list):
    """A list held by a Module: a plain ``list`` that reports structural changes.

    Lists assigned to Module attributes are converted to ``List`` automatically,
    so that ``model.layers.append(block)`` invalidates cached graph structure.

    >>> from ramie.core import List
    >>> xs = List([1, 2])
    >>> xs.append(3)
    >>> xs == [1, 2, 3]
    True
    """

    __slots__ = ("_ramie_tracked",)

    def __init__(self, items=()):
        self._ramie_tracked = False
        super().__init__(track(v) for v in items)

    def __reduce__(self):
        return (List, (list(self),))


class Dict(dict):
    """A dict held by a Module: a plain ``dict`` that reports structural changes.

    >>> from ramie.core import Dict
    >>> d = Dict(a=1)
    >>> d["b"] = 2
    >>> sorted(d)
    ['a', 'b']
    """

    __slots__ = ("_ramie_tracked",)

    def __init__(self, *args, **kwargs):
        self._ramie_tracked = False
        super().__init__(*args, **kwargs)
        for k, v in dict.items(self):
            t = type(v)
            if t is list or t is dict or t is tuple:
                dict.__setitem__(self, k, track(v))

    def __reduce__(self):
        return (Dict, (dict(self),))


for _name in _LIST_METHODS:
    setattr(List, _name, _bumps(_name))
for _name in _DICT_METHODS:
    setattr(Dict, _name, _bumps(_name))


def _list_append(self, value):
    if self._ramie_tracked:
        bump()
    list.append(self, track(value))


def _list_setitem(self, index, value):
    if self._ramie_tracked:
        bump()
    if isinstance(index, slice):
        value = [track(v) for v in value]
    else:
        value = track(value)
    list.__setitem__(self, index, value)


def _dict_setitem(self, key, value):
    if self._ramie_tracked:
        bump()
    dict.__setitem__(self, key, track(value))


List.append = _list_append
List.__setitem__ = _list_setitem
Dict.__setitem__ = _dict_setitem

jax.tree_util.register_pytree_with_keys(
    List,
    lambda xs: (
        tuple((jax.tree_util.SequenceKey(i), x) for i, x in enumerate(xs)),
        len(xs),
    ),
    lambda _, children: List(children),
    lambda xs: (tuple(xs), len(xs)),
)
jax.tree_util.register_pytree_with_keys(
    Dict,
    lambda d: (
        tuple((jax.tree_util.DictKey(k), d[k]) for k in d),
        tuple(d),
    ),
    lambda keys, children: Dict(zip(keys, children, strict=True)),
    lambda d: (tuple(d.values()), tuple(d)),
)
