"""``data`` / ``static``: say explicitly whether an attribute is state or structure.

ramie already decides by value: arrays, Variables and Modules (and
containers of them) are data, hashable Python values are static. The markers
force the other choice where the value alone would be classified otherwise,
and are harmless (the value unchanged) where it already agrees:

* ``data(x)`` turns Python and numpy scalars (also inside lists, dicts and
  tuples) into 0-d ``jax.Array`` leaves, so ``jax.tree.leaves`` and the
  transforms see them as state.
* ``static(x)`` checks that ``x`` can be structure (hashable, immutable; an
  array, Variable or Module cannot) and turns a list into a tuple.

``Data[T]`` / ``Static[T]`` say the same in class annotations: an attribute
annotated ``Data[int]`` gets ``data(...)`` applied on every assignment. Called
without a value, ``data()`` / ``static()`` are dataclass field specifiers
(``n: int = data(default=0)``) with the same effect, as in Flax NNX 0.12.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from . import _errors, _statics

A = TypeVar("A")
_DATA_MARK = "__ramie_data__"
_STATIC_MARK = "__ramie_static__"

#: ``Data[int]``: an attribute annotation meaning "always data" (see ``data``).
Data = Annotated[A, _DATA_MARK]
#: ``Static[str]``: an attribute annotation meaning "always static" (see ``static``).
Static = Annotated[A, _STATIC_MARK]

_SCALARS = (bool, int, float, complex, np.generic)
_NO_VALUE = object()
#: The key of a dataclass field's metadata that ``data()`` / ``static()`` set.
FIELD_KEY = "ramie_kind"


def _field(kind: str, kwargs: dict) -> Any:
    metadata = {**(kwargs.pop("metadata", None) or {}), FIELD_KEY: kind}
    return dataclasses.field(metadata=metadata, **kwargs)


def _no_field_keywords(name: str, kwargs: dict) -> None:
    if kwargs:
        raise TypeError(
            f"{name}(value, ...) takes no keywords; {sorted(kwargs)} are dataclass field "
            f"options: write `{name}(default=value, ...)` for a field with a default."
        )


def data(value: Any = _NO_VALUE, /, **kwargs: Any) -> Any:
    """Mark ``value`` as data (state): scalars become 0-d ``jax.Array`` leaves.

    >>> import jax
    >>> from ramie.core import Module, data
    >>> class Foo(Module):
    ...     def __init__(self):
    ...         self.count = data(42)   # a leaf, not a static int
    ...         self.name = "hello"     # static
    >>> [int(x) for x in jax.tree.leaves(Foo())]
    [42]

    Without a value it is a dataclass field (``dataclasses.field``'s keywords).
    """
    if value is _NO_VALUE:
        return _field("data", kwargs)
    _no_field_keywords("data", kwargs)
    if isinstance(value, _SCALARS):
        return jnp.asarray(value)
    if isinstance(value, list):
        return [data(v) for v in value]
    if isinstance(value, dict):
        return {k: data(v) for k, v in value.items()}
    if isinstance(value, tuple):
        items = [data(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    return value


def static(value: Any = _NO_VALUE, /, **kwargs: Any) -> Any:
    """Mark ``value`` as static (structure); a list becomes a tuple.

    Static values are compiled into traces and compared when a structure is
    looked up, so they must be hashable and never change in place.

    >>> from ramie.core import Module, static
    >>> class Foo(Module):
    ...     def __init__(self):
    ...         self.sizes = static([2, 3])
    >>> Foo().sizes
    (2, 3)

    Without a value it is a dataclass field (``dataclasses.field``'s keywords).
    """
    if value is _NO_VALUE:
        return _field("static", kwargs)
    _no_field_keywords("static", kwargs)
    if isinstance(value, list):
        value = tuple(static(v) for v in value)
    if isinstance(value, (jax.Array, np.ndarray)) or _is_object(value):
        raise _errors.MutableStaticError(_errors.NOT_STATIC.format(type_name=type(value).__name__))
    try:
        hash(value)
    except TypeError:
        raise _errors.MutableStaticError(
            _errors.NOT_STATIC.format(type_name=type(value).__name__)
        ) from None
    if not _statics.is_ok(type(value)):
        _statics.refuse(value, "static(...)")
    return value


def _is_object(value: Any) -> bool:
    return any(isinstance(value, t) for t in _statics.NOT_STATIC)


def _mark_of(annotation: Any) -> Any:
    """``data``, ``static`` or None for one (resolved) annotation."""
    for meta in getattr(annotation, "__metadata__", ()):
        if meta == _DATA_MARK:
            return data
        if meta == _STATIC_MARK:
            return static
    return None


def marked_fields(cls: type) -> dict[str, Any]:
    """``{attribute: data or static}`` for the ``Data``/``Static`` annotations of ``cls``."""
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to what is resolved
        hints = {}
        for klass in reversed(cls.__mro__):
            hints.update(
                {k: v for k, v in vars(klass).get("__annotations__", {}).items() if k not in hints}
            )
    out = {}
    for name, annotation in hints.items():
        mark = _mark_of(annotation)
        if mark is None and isinstance(annotation, str):
            if annotation.split("[", 1)[0].rsplit(".", 1)[-1] == "Data":
                mark = data
            elif annotation.split("[", 1)[0].rsplit(".", 1)[-1] == "Static":
                mark = static
        if mark is not None:
            out[name] = mark
    for name, f in getattr(cls, "__dataclass_fields__", {}).items():
        kind = f.metadata.get(FIELD_KEY)
        if kind is not None:
            out[name] = data if kind == "data" else static
    return out


def has_marks(cls: type) -> bool:
    """Whether ``cls`` (or a base) has annotations that could be ``Data``/``Static``."""
    for klass in cls.__mro__:
        for item in vars(klass).values():
            if isinstance(item, dataclasses.Field) and FIELD_KEY in item.metadata:
                return True
        for annotation in vars(klass).get("__annotations__", {}).values():
            if _mark_of(annotation) is not None:
                return True
            if isinstance(annotation, str) and ("Data[" in annotation or "Static[" in annotation):
                return True
    return False
