"""Flattening nested mappings to ``{path tuple: value}`` and back (NNX's ``traversals``).

These work on any nested ``Mapping`` (plain dicts, States, pure dicts from a
checkpoint); they know nothing of Modules. ``ramie.nn.traversals`` re-exports
them under NNX's names.

>>> from ramie.core.traversals import flatten_mapping, unflatten_mapping
>>> flat = flatten_mapping({"a": 1, "b": {"c": 2}})
>>> flat
{('a',): 1, ('b', 'c'): 2}
>>> unflatten_mapping(flat)
{'a': 1, 'b': {'c': 2}}
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

__all__ = [
    "empty_node",
    "flatten_mapping",
    "flatten_to_sequence",
    "unflatten_mapping",
]


class _EmptyNode:
    """Stands for an empty sub-mapping in a flat mapping (``keep_empty_nodes=True``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "empty_node"

    def __reduce__(self):
        return "empty_node"


#: The value an empty sub-mapping gets in a flat mapping made with ``keep_empty_nodes=True``.
empty_node = _EmptyNode()

Path = tuple[Hashable, ...]


def _walk(
    xs: Mapping,
    prefix: Path,
    keep_empty_nodes: bool,
    is_leaf: Callable[[Path, Any], bool] | None,
    out: list,
) -> None:
    for key, value in xs.items():
        path = (*prefix, key)
        if isinstance(value, Mapping) and not (is_leaf is not None and is_leaf(path, value)):
            if value:
                _walk(value, path, keep_empty_nodes, is_leaf, out)
            elif keep_empty_nodes:
                out.append((path, empty_node))
        else:
            out.append((path, value))


def flatten_to_sequence(
    xs: Mapping, /, *, is_leaf: Callable[[Path, Any], bool] | None = None
) -> list[tuple[Path, Any]]:
    """Every leaf of the nested mapping ``xs`` as a ``(path tuple, value)`` pair, in order.

    ``is_leaf(path, value)`` returning True keeps a sub-mapping whole.

    >>> from ramie.core.traversals import flatten_to_sequence
    >>> flatten_to_sequence({"a": {"b": 1, "c": 2}})
    [(('a', 'b'), 1), (('a', 'c'), 2)]
    """
    out: list = []
    _walk(xs, (), False, is_leaf, out)
    return out


def flatten_mapping(
    xs: Mapping,
    /,
    *,
    keep_empty_nodes: bool = False,
    is_leaf: Callable[[Path, Any], bool] | None = None,
    sep: str | None = None,
) -> dict[Any, Any]:
    """The nested mapping ``xs`` as a flat dict keyed by path tuples (or ``sep``-joined strings).

    Empty sub-mappings are dropped, or kept as ``empty_node`` with
    ``keep_empty_nodes=True``; ``is_leaf(path, value)`` returning True keeps a
    sub-mapping whole.

    >>> from ramie.core.traversals import flatten_mapping
    >>> flatten_mapping({"a": {"b": 1}, "e": {}}, sep="/")
    {'a/b': 1}
    >>> flatten_mapping({"a": {"b": 1}, "e": {}}, keep_empty_nodes=True)
    {('a', 'b'): 1, ('e',): empty_node}
    """
    out: list = []
    _walk(xs, (), keep_empty_nodes, is_leaf, out)
    if sep is None:
        return dict(out)
    return {sep.join(map(str, path)): value for path, value in out}


def unflatten_mapping(
    xs: Mapping | Iterable[tuple[Any, Any]], /, *, sep: str | None = None
) -> dict:
    """The nested dict that ``flatten_mapping`` flattened into ``xs`` (a mapping or pairs).

    With ``sep``, string keys are split on it. ``empty_node`` values become ``{}``.
    Two paths where one is a prefix of the other cannot be nested: that is a
    ValueError naming both.

    >>> from ramie.core.traversals import unflatten_mapping
    >>> unflatten_mapping({"a/b": 1, "a/c": 2}, sep="/")
    {'a': {'b': 1, 'c': 2}}
    """
    items = xs.items() if isinstance(xs, Mapping) else xs
    root: dict = {}
    for key, value in items:
        path = tuple(key.split(sep)) if sep is not None else tuple(key)
        if not path:
            raise ValueError("unflatten_mapping(): an empty path () has no place in a nested dict.")
        d = root
        for depth, k in enumerate(path[:-1]):
            sub = d.setdefault(k, {})
            if not isinstance(sub, dict):
                raise ValueError(
                    f"unflatten_mapping(): {path[: depth + 1]!r} holds a value, so {path!r} "
                    "cannot be nested under it."
                )
            d = sub
        if path[-1] in d and isinstance(d[path[-1]], dict):
            raise ValueError(
                f"unflatten_mapping(): {path!r} is both a value and the prefix of other paths."
            )
        d[path[-1]] = {} if value is empty_node else value
    return root
