"""The nodes of a GraphDef: one small immutable record per object in the graph.

Each node is a NamedTuple whose first field is its kind ``code`` (so nodes of
different kinds never compare equal); they nest, hash and compare like the
tuples they are, which makes a GraphDef a cheap cache key.

>>> from ramie.core._nodes import ListNode, VarNode, LIST, VAR
>>> node = ListNode(LIST, (VarNode(VAR, int, ()),))
>>> node.items[0].cls.__name__, node == (LIST, ((VAR, int, ()),))
('int', True)
"""

from __future__ import annotations

from typing import Any, NamedTuple

# Node kind codes (the first field of every node).
MODULE, VAR, ARRAY, REF, STATIC, LIST, DICT, TUPLE = range(1, 9)


class ModuleNode(NamedTuple):
    """A Module: its class and ``(attribute name, node)`` pairs in attribute order."""

    code: int
    cls: type
    attrs: tuple


class VarNode(NamedTuple):
    """A Variable (a leaf): its class and sorted metadata items."""

    code: int
    cls: type
    metadata: tuple


class ArrayNode(NamedTuple):
    """A raw array attribute (a leaf)."""

    code: int


class RefNode(NamedTuple):
    """A second reference to the Module/Variable numbered ``index`` in walk order."""

    code: int
    index: int


class StaticNode(NamedTuple):
    """A static (hashable, immutable) attribute value."""

    code: int
    cls: type
    value: Any


class ListNode(NamedTuple):
    """A List: its item nodes."""

    code: int
    items: tuple


class DictNode(NamedTuple):
    """A Dict: ``(key, node)`` pairs in order."""

    code: int
    items: tuple


class TupleNode(NamedTuple):
    """A tuple (or NamedTuple): its class and item nodes."""

    code: int
    cls: type
    items: tuple


_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (hot in walks)


def var(cls: type, metadata: tuple) -> VarNode:
    return _new(VarNode, (VAR, cls, metadata))


def module(cls: type, attrs: tuple) -> ModuleNode:
    return _new(ModuleNode, (MODULE, cls, attrs))


def ref(index: int) -> RefNode:
    return _new(RefNode, (REF, index))


def static(value: Any) -> StaticNode:
    return _new(StaticNode, (STATIC, type(value), value))


def list_(items: tuple) -> ListNode:
    return _new(ListNode, (LIST, items))


def dict_(items: tuple) -> DictNode:
    return _new(DictNode, (DICT, items))


def tuple_(cls: type, items: tuple) -> TupleNode:
    return _new(TupleNode, (TUPLE, cls, items))


ARRAY_NODE = ArrayNode(ARRAY)


def children(node: tuple) -> list[tuple]:
    """The child nodes of ``node`` in walk order (empty for leaves, refs and statics)."""
    code = node[0]
    if code == MODULE or code == DICT:
        return [c for _, c in (node.attrs if code == MODULE else node.items)]
    if code == LIST or code == TUPLE:
        return list(node.items)
    return []
