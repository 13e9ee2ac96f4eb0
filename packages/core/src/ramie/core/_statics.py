"""Which non-array attribute values may be static (part of a Module's structure).

A static value is stored in the GraphDef and compiled into ``nn.jit``'s
traces, and ramie decides whether a cached structure is still valid without
looking at it again. So a static value must not change in place. Numbers,
strings, ``None``, types, functions, enums, frozen dataclasses, NamedTuples
and other values hashed by value are accepted; an instance of a Python class
that is hashed by identity and has mutable attributes (a plain config object)
is refused with ``MutableStaticError``: ramie could not see ``cfg.scale = 9``.
"""

from __future__ import annotations

import dataclasses
import enum
import types

import jax

from . import _errors
from ._caches import BoundedCache

_ALWAYS_OK = (type, enum.Enum, types.FunctionType, types.MethodType, types.ModuleType)
#: Per type seen: may its instances be static? Bounded, emptied by clear_caches().
_OK = BoundedCache("static types", 1024)
#: Types that are never static (Variables, Modules, arrays): registered by their modules.
NOT_STATIC: list[type] = []


def exempt(*types_: type) -> None:
    """Declare ``types_`` (and subclasses) as never static: nothing to check."""
    NOT_STATIC.extend(types_)
    _OK.clear()


def _classify(t: type) -> bool:
    if issubclass(t, jax.core.Tracer):
        return False  # checked by Module.__setattr__ (see _plainjax)
    if issubclass(t, (*_ALWAYS_OK, *NOT_STATIC)):
        return True
    if dataclasses.is_dataclass(t):
        return bool(t.__dataclass_params__.frozen)
    if any("__call__" in vars(c) for c in t.__mro__ if c is not object):
        return True  # functions-like objects (custom_jvp, partial, jitted functions)
    if t.__hash__ is not object.__hash__:
        return True  # hashed (and compared) by value
    # Hashed by identity: refused when its instances carry a mutable attribute dict
    # (a plain Python object such as a config); C/slot types (devices, specs) are fine.
    return not any("__dict__" in vars(c) for c in t.__mro__ if c is not object)


def is_ok(t: type) -> bool:
    """Whether instances of ``t`` may be static Module attributes (cached per type).

    >>> import dataclasses
    >>> from ramie.core._statics import is_ok
    >>> class Config:  # hashed by identity, mutable attributes
    ...     scale = 2.0
    >>> @dataclasses.dataclass(frozen=True)
    ... class Frozen:
    ...     scale: float = 2.0
    >>> is_ok(int), is_ok(Frozen), is_ok(Config)
    (True, True, False)
    """
    ok = _OK.get(t)
    if ok is None:
        ok = _OK.put(t, _classify(t))
    return ok


def refuse(value, where: str) -> None:
    """Raise MutableStaticError for ``value`` found at ``where``."""
    raise _errors.MutableStaticError(
        _errors.MUTABLE_STATIC.format(where=where, type_name=type(value).__name__)
    )
