"""Filters: predicates over ``(path, value)`` that select parts of a state.

A filter is any of: a type (``Param``, or ``jax.Array`` for raw arrays), a
tuple or list of filters (matches if any does), ``All(...)``, ``Any(...)``,
``Not(...)``, ``PathContains(key)``, ``Everything`` (also ``...`` or ``True``),
``Nothing`` (also ``False``), or a callable ``(path, value) -> bool``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from typing import Any, TypeAlias

from . import _errors

#: What selects state: a Variable type, a tuple of filters, ``All`` / ``Any`` / ``Not``,
#: ``PathContains``, ``Everything`` (``...``), ``Nothing``, or a ``(path, value) -> bool``.
Filter: TypeAlias = Any
Path: TypeAlias = tuple[Hashable, ...]
Predicate: TypeAlias = Callable[[Path, Any], bool]


@dataclasses.dataclass(frozen=True)
class OfType:
    """Matches values that are instances of ``type`` (Variables by their kind)."""

    type: type

    def __call__(self, path: Path, value: Any) -> bool:
        return isinstance(value, self.type)

    def __repr__(self) -> str:
        return self.type.__name__


class Any_:
    """Matches when any of the given filters matches.

    >>> from ramie.core import Any, Param, BatchStat
    >>> f = Any(Param, BatchStat)
    """

    __slots__ = ("filters", "_predicates")

    def __init__(self, *filters: Filter):
        object.__setattr__(self, "filters", filters)
        object.__setattr__(self, "_predicates", tuple(to_predicate(f) for f in filters))

    def __call__(self, path: Path, value: Any) -> bool:
        return any(p(path, value) for p in self._predicates)

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other._predicates == self._predicates

    def __hash__(self) -> int:
        return hash((type(self), self._predicates))

    def __repr__(self) -> str:
        return f"Any({', '.join(map(repr, self._predicates))})"


class All(Any_):
    """Matches when every one of the given filters matches.

    >>> from ramie.core import All, Param, PathContains
    >>> kernels = All(Param, PathContains("kernel"))
    """

    __slots__ = ()

    def __call__(self, path: Path, value: Any) -> bool:
        return all(p(path, value) for p in self._predicates)

    def __repr__(self) -> str:
        return f"All({', '.join(map(repr, self._predicates))})"


@dataclasses.dataclass(frozen=True)
class Not:
    """Matches when ``filter`` does not.

    >>> from ramie.core import Not, Param
    >>> everything_but_params = Not(Param)
    """

    filter: Filter

    def __post_init__(self):
        object.__setattr__(self, "filter", to_predicate(self.filter))

    def __call__(self, path: Path, value: Any) -> bool:
        return not self.filter(path, value)


@dataclasses.dataclass(frozen=True)
class PathContains:
    """Matches values whose path has ``key`` as one of its parts.

    >>> from ramie.core import PathContains
    >>> PathContains("kernel")(("linear1", "kernel"), None)
    True
    """

    key: Hashable

    def __call__(self, path: Path, value: Any) -> bool:
        return self.key in path


class _Constant:
    __slots__ = ("_result", "_name")

    def __init__(self, result: bool, name: str):
        self._result = result
        self._name = name

    def __call__(self, path: Path, value: Any) -> bool:
        return self._result

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self):
        return self._name


#: The filter that matches every value (``...`` means the same), e.g. to end a ``split``.
Everything = _Constant(True, "Everything")
#: The filter that matches no value, e.g. ``StateAxes({nn.Nothing: 0, ...: None})``.
Nothing = _Constant(False, "Nothing")


def to_predicate(f: Filter) -> Predicate:
    """Turn any filter into a hashable predicate ``(path, value) -> bool``.

    >>> from ramie.core import Param, to_predicate
    >>> to_predicate(Param)
    Param
    """
    if f is Ellipsis or f is True:
        return Everything
    if f is False or f is None:
        return Nothing
    if isinstance(f, type):
        return OfType(f)
    if isinstance(f, (tuple, list)):
        return Any_(*f)
    if callable(f):
        return f
    raise _errors.FilterError(_errors.UNKNOWN_FILTER.format(filter=f))


def is_structural(pred: Predicate) -> bool:
    """True when ``pred`` looks only at a leaf's type and path, never at its value.

    Such a predicate gives the same answer for as long as an object's structure
    is unchanged, so its partition of the leaves can be cached.
    """
    if isinstance(pred, (OfType, PathContains, _Constant)):
        return True
    if isinstance(pred, Any_):
        return all(map(is_structural, pred._predicates))
    if isinstance(pred, Not):
        return is_structural(pred.filter)
    return False
