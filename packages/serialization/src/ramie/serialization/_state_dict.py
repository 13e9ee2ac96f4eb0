"""``to_state_dict`` / ``from_state_dict``: trees to and from nested string-keyed dicts.

A state dict is what gets serialized: nested dicts with string keys and array
(or scalar) leaves. A ramie ``State`` becomes its pure dict, keys sorted the way
the State's pytree orders them, so its bytes are those Flax writes for the pure
dict of the same NNX model; a ``Variable`` becomes its value; lists and tuples
become ``{"0": ..., "1": ...}``. Restoring walks the *target* (a real or
abstract tree) and takes each leaf from the data, checking keys, shapes and
dtypes and naming every path that differs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from ramie.core import Module, State, Variable

from . import _dtypes, _errors

MAX_DEPTH = 200
_REGISTRY: dict[type, tuple[Callable[[Any], dict], Callable[[Any, dict], Any]]] = {}
MISSING = object()


def register_serialization_state(
    ty: type,
    to_state_dict: Callable[[Any], dict[str, Any]],
    from_state_dict: Callable[[Any, dict[str, Any]], Any],
    *,
    override: bool = False,
) -> None:
    """Teach serialization a custom type: how to turn it into a state dict and back.

    ``to_state_dict(obj)`` returns a dict with string keys; ``from_state_dict(target,
    state_dict)`` returns a new object like ``target`` holding the restored data.

    >>> import numpy as np
    >>> from ramie import serialization as ser
    >>> class Pair:
    ...     def __init__(self, a, b): self.a, self.b = a, b
    >>> ser.register_serialization_state(
    ...     Pair, lambda p: {"a": p.a, "b": p.b}, lambda t, d: Pair(d["a"], d["b"]))
    >>> ser.from_bytes(Pair(0, 0), ser.to_bytes(Pair(1, 2))).b
    2
    """
    if ty in _REGISTRY and not override:
        raise ValueError(
            f"{ty.__name__} is already registered for serialization; pass override=True "
            "to replace its functions."
        )
    _REGISTRY[ty] = (to_state_dict, from_state_dict)


def _registered(ty: type):
    for base in ty.__mro__:
        if base in _REGISTRY:
            return _REGISTRY[base]
    return None


def is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def sorted_keys(d: Mapping) -> list:
    """Keys in the order a State's pytree uses: sorted, ints before other keys if mixed."""
    try:
        return sorted(d)
    except TypeError:
        return sorted(d, key=lambda k: (0, k, "") if isinstance(k, int) else (1, 0, repr(k)))


# -- to ----------------------------------------------------------------------
def to_state_dict(tree: Any) -> Any:
    """The nested string-keyed dict that ``tree`` serializes as.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.serialization import to_state_dict
    >>> to_state_dict(core.State({"layers": [{"w": core.Param(jnp.zeros(()))}]}))
    {'layers': {'0': {'w': Array(0., dtype=float32)}}}
    """
    return _to(tree, ())


def _to(x: Any, path: tuple) -> Any:
    if len(path) > MAX_DEPTH:
        raise _errors.UnsupportedTypeError(
            _errors.TOO_DEEP.format(limit=MAX_DEPTH, path=_errors.format_path(path[:8]) + "/...")
        )
    custom = _registered(type(x))
    if custom is not None:
        return _mapping(custom[0](x), path, list)
    if isinstance(x, State):
        return _mapping(x, path, sorted_keys)
    if isinstance(x, Variable):
        return _to(x.value, path)
    if isinstance(x, Module):
        raise _errors.UnsupportedTypeError(
            _errors.MODULE_NOT_SERIALIZABLE.format(
                path=_errors.format_path(path), type_name=type(x).__name__
            )
        )
    if isinstance(x, Mapping):
        return _mapping(x, path, list)
    if is_namedtuple(x):
        return {name: _to(getattr(x, name), (*path, name)) for name in x._fields}
    if isinstance(x, (list, tuple)):
        return {str(i): _to(v, (*path, str(i))) for i, v in enumerate(x)}
    if isinstance(x, jax.Array) and _dtypes.is_key_dtype(x.dtype):
        return jax.random.key_data(x)
    return x


def _mapping(x: Mapping, path: tuple, order: Callable) -> dict:
    out = {}
    for k in order(x):
        if not isinstance(k, (str, int)) or isinstance(k, bool):
            raise _errors.UnsupportedTypeError(
                _errors.BAD_KEY.format(
                    path=_errors.format_path(path), key=k, type_name=type(k).__name__
                )
            )
        out[str(k)] = _to(x[k], (*path, str(k)))
    if len(out) != len(x):
        clashing = sorted({str(k) for k in x if sum(str(j) == str(k) for j in x) > 1})
        raise _errors.UnsupportedTypeError(
            _errors.DUPLICATE_KEYS.format(path=_errors.format_path(path), keys=clashing)
        )
    return out


# -- describing leaves for messages ----------------------------------------
def describe(x: Any) -> str:
    """A short description of a target or data value for mismatch messages."""
    if x is MISSING:
        return "nothing (the key is missing)"
    if isinstance(x, Mapping):
        keys = list(x)
        shown = ", ".join(repr(str(k)) for k in keys[:6]) + (", ..." if len(keys) > 6 else "")
        return f"a mapping with keys [{shown}]"
    dtype = getattr(x, "dtype", None)
    shape = getattr(x, "shape", None)
    if dtype is not None and shape is not None:
        return f"{dtype}{list(shape)}".replace(" ", "")
    if x is None:
        return "None"
    text = repr(x)
    return f"{type(x).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _leaf_difference(target: Any, data: Any) -> str | None:
    """Why ``data`` cannot be restored into the target leaf ``target`` (None: it can)."""
    if isinstance(data, Mapping):
        return "kind"
    t_dtype = getattr(target, "dtype", None)
    t_shape = getattr(target, "shape", None)
    if t_dtype is not None and t_shape is not None:
        d_dtype = getattr(data, "dtype", None)
        d_shape = getattr(data, "shape", None)
        if d_dtype is None or d_shape is None:
            return "kind"
        if _dtypes.is_key_dtype(t_dtype):
            want_shape = tuple(t_shape) + _dtypes.key_data_shape(t_dtype)
            want_dtype = np.dtype(np.uint32)
        else:
            want_shape, want_dtype = tuple(t_shape), np.dtype(t_dtype)
        if tuple(d_shape) != want_shape:
            return "shape"
        if np.dtype(d_dtype) != want_dtype:
            return "dtype"
        return None
    if target is None:
        return None if data is None else "kind"
    if isinstance(target, (bool, int, float, complex, str, bytes)):
        return None if type(data) is type(target) else "kind"
    return None


# -- from --------------------------------------------------------------------
Visitor = Callable[[tuple, Any, Any], Any]


def walk(target: Any, data: Any, path: tuple, visit: Visitor, diffs: list) -> Any:
    """Rebuild ``target`` with each leaf replaced by ``visit(path, target_leaf, data_leaf)``.

    ``data_leaf`` is ``MISSING`` where the data has no entry. Structural
    differences (missing or extra keys, a mapping where a leaf belongs) are
    appended to ``diffs`` as ``(path, target side, data side)``.
    """
    custom = _registered(type(target))
    if custom is not None:
        if data is MISSING:
            diffs.append((_errors.format_path(path), describe(target), describe(data)))
            return target
        return custom[1](target, data)
    if isinstance(target, Module):
        raise _errors.SerializationError(
            _errors.TARGET_IS_MODULE.format(
                path=_errors.format_path(path), type_name=type(target).__name__
            )
        )
    if isinstance(target, Variable):
        return target.replace(walk(target.value, data, path, visit, diffs))
    if isinstance(target, Mapping):
        items = walk_items(target, list(target), data, path, visit, diffs)
        return State(items) if isinstance(target, State) else dict(items)
    if is_namedtuple(target):
        items = walk_items(target, list(target._fields), data, path, visit, diffs, getattr)
        return type(target)(**items)
    if isinstance(target, (list, tuple)):
        if isinstance(data, (list, tuple)):
            data = {str(i): v for i, v in enumerate(data)}
        items = walk_items(target, list(range(len(target))), data, path, visit, diffs)
        return type(target)(items.values())
    return visit(path, target, data)


def walk_items(target, keys, data, path, visit, diffs, get=lambda t, k: t[k]) -> dict:
    if data is MISSING or not isinstance(data, Mapping):
        if data is not MISSING:
            diffs.append((_errors.format_path(path), describe(target), describe(data)))
        data = {}
    out = {}
    for k in keys:
        sub = data.get(str(k), MISSING)
        out[k] = walk(get(target, k), sub, (*path, str(k)), visit, diffs)
    names = {str(k) for k in keys}
    for k in data:
        if k not in names:
            diffs.append((_errors.format_path((*path, k)), describe(MISSING), describe(data[k])))
    return out


def compare_leaves(diffs: list) -> Visitor:
    """A visitor that records leaf differences into ``diffs`` and changes nothing."""

    def visit(path: tuple, target: Any, data: Any) -> Any:
        if data is MISSING or _leaf_difference(target, data) is not None:
            diffs.append((_errors.format_path(path), describe(target), describe(data)))
        return target

    return visit


def convert(target: Any, data: Any) -> Any:
    """``data`` (numpy or Python) in the form of the target leaf ``target``."""
    t_dtype = getattr(target, "dtype", None)
    if t_dtype is None or getattr(target, "shape", None) is None:
        return data
    if isinstance(target, (jax.Array, jax.ShapeDtypeStruct)):
        sharding = getattr(target, "sharding", None)
        value = jax.device_put(data, sharding) if sharding is not None else jax.device_put(data)
        if _dtypes.is_key_dtype(t_dtype):
            value = _dtypes.wrap_key_data(value, t_dtype)
        return value
    if isinstance(target, np.generic):
        return np.asarray(data)[()]
    return data


def check(target: Any, data: Any, *, strict: bool, what: str) -> set[str]:
    """Compare ``data`` with ``target``; raise (strict) or warn; return the differing paths."""
    diffs: list[tuple[str, str, str]] = []
    walk(target, data, (), compare_leaves(diffs), diffs)
    report_differences(diffs, strict=strict, what=what)
    return {path for path, _, _ in diffs}


def apply(target: Any, data: Any, bad: set[str], load: Callable[[Any, Any], Any]) -> Any:
    """Rebuild ``target`` with ``load(target_leaf, data_leaf)`` at every path not in ``bad``."""

    def visit(path: tuple, t: Any, d: Any) -> Any:
        if d is MISSING or _errors.format_path(path) in bad:
            return t
        return load(t, d)

    return walk(target, data, (), visit, [])


def restore_values(
    target: Any, data: Any, *, strict: bool, what: str, load: Callable[[Any, Any], Any]
) -> Any:
    """Check ``data`` against ``target``, then rebuild the target with the data's leaves.

    ``load(target_leaf, data_leaf)`` produces each restored leaf; it is only
    called once the whole tree has been checked, so nothing is converted for
    data that is going to be refused.
    """
    return apply(target, data, check(target, data, strict=strict, what=what), load)


def report_differences(diffs: list, *, strict: bool, what: str) -> None:
    """Raise (strict) or warn about the differences found while restoring."""
    if not diffs:
        return
    paths = _errors.format_differences(diffs)
    if strict:
        raise _errors.StateMismatchError(
            _errors.MISMATCH.format(what=what, count=len(diffs), paths=paths), diffs
        )
    warnings.warn(
        _errors.PARTIAL_RESTORE.format(what=what, count=len(diffs), paths=paths),
        _errors.RestoreMismatchWarning,
        stacklevel=3,
    )


def from_state_dict(target: Any, state_dict: Any, *, strict: bool = True) -> Any:
    """A copy of ``target`` holding the values of ``state_dict`` (the inverse of ``to_state_dict``).

    ``target`` may hold real arrays or abstract ``jax.ShapeDtypeStruct`` leaves
    (e.g. from ``jax.eval_shape``); a jax target leaf gives a ``jax.Array`` on
    the target's sharding, a key-typed leaf gives PRNG keys again. Missing or
    extra keys and shape or dtype differences raise ``StateMismatchError``
    naming every path; with ``strict=False`` the matching paths are restored and
    a ``RestoreMismatchWarning`` lists the rest.

    >>> import numpy as np
    >>> from ramie.serialization import from_state_dict
    >>> from_state_dict({"w": np.zeros(2)}, {"w": np.ones(2)})
    {'w': array([1., 1.])}
    """
    return restore_values(target, state_dict, strict=strict, what="from_state_dict()", load=convert)
