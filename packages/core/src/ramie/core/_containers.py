"""The structure version and the tracked containers that report structural changes.

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

import itertools

import jax
import numpy as np

from ._errors import DICT_NO_KEY, UNTRACKED_CONTAINER, UNTRACKED_HINTS, UntrackedContainerError

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


_MISSING = object()


def _describe(owner, key) -> str:
    if owner is None:
        return "A ramie container"
    if isinstance(owner, (List, Dict)):
        return f"A ramie.core.{type(owner).__name__} (at {key!r})"
    owner_name = owner if isinstance(owner, str) else type(owner).__name__
    return f"Module attribute '{owner_name}.{key}'"


def refuse(value, owner=None, key=None):
    """Raise the error for a list/dict subclass that ramie cannot track."""
    name = type(value).__name__
    raise UntrackedContainerError(
        UNTRACKED_CONTAINER.format(
            where=_describe(owner, key),
            type_name=name,
            base="dict" if isinstance(value, dict) else "list",
            hint=UNTRACKED_HINTS.get(name, ""),
        )
    )


def track(value, owner=None, key=None):
    """``value`` with every plain list/dict in it tracked (``owner``/``key`` name it in errors).

    Plain lists and dicts become ``List``/``Dict`` (recursively, also inside
    tuples); other list/dict subclasses (``defaultdict``, user subclasses) are
    refused with ``UntrackedContainerError``: their changes could go unseen.
    """
    t = type(value)
    if t is list:
        out = list.__new__(List)
        out._ramie_tracked = False
        list.extend(out, [track(v, owner, key) for v in value])
        return out
    if t is dict:
        out = dict.__new__(Dict)
        out._ramie_tracked = False
        dict.update(out, {k: track(v, owner, key) for k, v in value.items()})
        return out
    if t is List or t is Dict:
        return value
    if isinstance(value, tuple):  # NamedTuples too: their items are tracked, type kept
        items = [track(v, owner, key) for v in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return _rebuild_tuple(t, items)
        return value
    if isinstance(value, (list, dict)):
        refuse(value, owner, key)
    return value


def _rebuild_tuple(cls: type, items: list) -> tuple:
    if cls is tuple:
        return tuple(items)
    if hasattr(cls, "_make"):
        return cls._make(items)
    return cls(items)


def needs_tracking(value) -> bool:
    """True when ``track(value)`` may return something else or raise (cheap pre-check)."""
    t = type(value)
    return t is not List and t is not Dict and isinstance(value, (list, dict, tuple))


def is_array_swap(old, new) -> bool:
    """True when an attribute holding an array gets another array (a value, not structure)."""
    return isinstance(old, ARRAY_TYPES) and isinstance(new, ARRAY_TYPES)


class List(list):
    """A list held by a Module: a plain ``list`` that reports structural changes.

    Lists assigned to Module attributes are converted to ``List`` automatically,
    so that ``model.layers.append(block)`` invalidates cached graph structure.
    Every way of putting a value in (``append``, ``insert``, ``extend``, ``+=``,
    slice assignment) converts plain lists/dicts inside it too.

    >>> from ramie.core import List
    >>> xs = List([1, 2])
    >>> xs.append(3)
    >>> xs == [1, 2, 3]
    True
    """

    __slots__ = ("_ramie_tracked", "__weakref__")

    def __init__(self, items=()):
        self._ramie_tracked = False
        super().__init__(track(v, self, i) for i, v in enumerate(items))

    def __reduce__(self):
        return (List, (list(self),))

    def append(self, value) -> None:
        if self._ramie_tracked:
            bump()
        list.append(self, track(value, self, len(self)))

    def insert(self, index, value) -> None:
        if self._ramie_tracked:
            bump()
        list.insert(self, index, track(value, self, index))

    def extend(self, values) -> None:
        if self._ramie_tracked:
            bump()
        list.extend(self, [track(v, self, i) for i, v in enumerate(values, len(self))])

    def __iadd__(self, values):
        self.extend(values)
        return self

    def __setitem__(self, index, value) -> None:
        if self._ramie_tracked:
            bump()
        if isinstance(index, slice):
            value = [track(v, self, index) for v in value]
        else:
            value = track(value, self, index)
        list.__setitem__(self, index, value)


class Dict(dict):
    """A dict held by a Module: a plain ``dict`` that reports structural changes.

    Every way of putting a value in (``d[k] = v``, ``setdefault``, ``update``,
    ``|=``) converts plain lists/dicts inside it too, so the list that
    ``setdefault`` returns is itself tracked.

    String keys can also be used as attributes, as with NNX's ``nnx.Dict``:
    ``d.a`` reads, ``d.a = v`` sets and ``del d.a`` removes the key ``'a'``
    (a key named like a dict method, ``d.items``, is reached by ``d["items"]``).

    >>> from ramie.core import Dict
    >>> d = Dict(a=1)
    >>> d["b"] = 2
    >>> d.setdefault("c", []).append(3)
    >>> sorted(d), type(d["c"]).__name__
    (['a', 'b', 'c'], 'List')
    >>> d.e = 5
    >>> d.a + d["e"]
    6
    """

    __slots__ = ("_ramie_tracked", "__weakref__")

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "_ramie_tracked":
            raise AttributeError(name)
        try:
            return dict.__getitem__(self, name)
        except KeyError:
            raise AttributeError(DICT_NO_KEY.format(key=name, keys=list(self))) from None

    def __setattr__(self, name: str, value) -> None:
        if name in _DICT_SLOTS:
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __delattr__(self, name: str) -> None:
        if name in _DICT_SLOTS:
            object.__delattr__(self, name)
        elif name in self:
            del self[name]
        else:
            raise AttributeError(DICT_NO_KEY.format(key=name, keys=list(self)))

    def __dir__(self):
        return [*super().__dir__(), *(k for k in self if isinstance(k, str))]

    def __init__(self, *args, **kwargs):
        self._ramie_tracked = False
        super().__init__(*args, **kwargs)
        for k, v in dict.items(self):
            if needs_tracking(v):
                dict.__setitem__(self, k, track(v, self, k))

    def __reduce__(self):
        return (Dict, (dict(self),))

    def __setitem__(self, key, value) -> None:
        if self._ramie_tracked:
            bump()
        dict.__setitem__(self, key, track(value, self, key))

    def setdefault(self, key, default=None):
        if key in self:
            return dict.__getitem__(self, key)
        self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args, **kwargs) -> None:
        if self._ramie_tracked:
            bump()
        for k, v in dict(*args, **kwargs).items():
            dict.__setitem__(self, k, track(v, self, k))

    def __ior__(self, other):
        self.update(other)
        return self


_DICT_SLOTS = frozenset({"_ramie_tracked", "__weakref__"})


def _bumps(base, name):
    method = getattr(base, name)

    def bumping(self, *args, **kwargs):
        if self._ramie_tracked:
            bump()
        return method(self, *args, **kwargs)

    bumping.__name__ = name
    bumping.__doc__ = method.__doc__
    return bumping


# Methods that only remove or reorder entries: they bump, and need no conversion.
for _name in ["__delitem__", "__imul__", "pop", "remove", "clear", "sort", "reverse"]:
    setattr(List, _name, _bumps(list, _name))
for _name in ["__delitem__", "pop", "popitem", "clear"]:
    setattr(Dict, _name, _bumps(dict, _name))


class Attributes(dict):
    """The ``__dict__`` of a flattened Module: writes through it are tracked too.

    ``module.__dict__[name] = value``, ``vars(module).update(...)`` and the
    like convert plain lists/dicts and report structural changes, exactly as
    ``setattr`` does. Installed by the first ``flatten`` of the module.
    """

    __slots__ = ("_ramie_owner", "_ramie_tracked", "__weakref__")

    def __setitem__(self, key, value) -> None:
        value = track(value, self._ramie_owner, key)
        if self._ramie_tracked and not is_array_swap(self.get(key, _MISSING), value):
            bump()
        dict.__setitem__(self, key, value)

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args, **kwargs) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def __ior__(self, other):
        self.update(other)
        return self


for _name in ["__delitem__", "pop", "popitem", "clear"]:
    setattr(Attributes, _name, _bumps(dict, _name))


def make_attributes(owner, items: dict) -> Attributes:
    """A tracked attribute dict for Module ``owner`` holding ``items`` (already tracked)."""
    d = dict.__new__(Attributes)
    dict.update(d, items)
    d._ramie_owner = type(owner).__name__  # a name only: no cycle through the Module
    d._ramie_tracked = True
    return d


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
