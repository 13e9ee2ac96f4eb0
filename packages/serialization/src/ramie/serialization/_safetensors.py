"""safetensors files with flat keys (``layers.0.kernel``), through the safetensors numpy API.

safetensors holds a flat mapping from names to arrays and nothing else, so a
State is flattened to ``"a.b.0.kernel"`` names on the way out and nested again
(against a target, when given) on the way in. No torch involved.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import safetensors
import safetensors.numpy

from . import _errors
from ._msgpack import as_host_array
from ._safetensors_read import read_safetensors
from ._state_dict import convert, restore_values, to_state_dict


def flatten_keys(tree: Any, sep: str = ".") -> dict[str, Any]:
    """The leaves of ``tree``'s state dict keyed by their joined path: ``{"a.b.0.kernel": x}``.

    >>> import numpy as np
    >>> from ramie.serialization import flatten_keys
    >>> list(flatten_keys({"layers": [{"kernel": np.zeros(1)}]}))
    ['layers.0.kernel']
    """
    out: dict[str, Any] = {}
    stack: list[tuple[tuple, Any]] = [((), to_state_dict(tree))]
    while stack:
        path, node = stack.pop()
        if isinstance(node, Mapping):
            for k in reversed(list(node)):
                if sep in k:
                    raise _errors.SerializationError(
                        _errors.FLAT_KEY_DOT.format(path=_errors.format_path((*path, k)), key=k)
                    )
                stack.append(((*path, k), node[k]))
        else:
            out[sep.join(path)] = node
    return out


def unflatten_keys(flat: Mapping[str, Any], sep: str = ".", source: str = "the names") -> dict:
    """The nested dict of ``{"a.b": x}`` names: ``{"a": {"b": x}}``.

    ``source`` names where the names come from in the error a clash raises.
    """
    root: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, last = name.split(sep)
        node = root
        for k in parents:
            child = node.setdefault(k, {})
            if not isinstance(child, dict):
                raise _errors.MalformedDataError(
                    _errors.FLAT_NAMES.format(
                        source=source,
                        detail=f"the name {name!r} goes through {k!r}, which is also an array",
                    )
                )
            node = child
        if last in node:
            raise _errors.MalformedDataError(
                _errors.FLAT_NAMES.format(
                    source=source, detail=f"the name {name!r} clashes with another"
                )
            )
        node[last] = value
    return root


def save_safetensors(
    path: str | os.PathLike, state: Any, *, metadata: Mapping[str, str] | None = None
) -> None:
    """Write the arrays of ``state`` (a State or pure dict) to a safetensors file.

    Keys are the flat paths (``"layers.0.kernel"``); ``metadata`` is an optional
    str-to-str mapping stored in the header.

    Args:
        path: the file to write.
        state: a ``State`` or nested dicts of arrays.
        metadata: optional strings stored in the header.

    Raises:
        UnsupportedTypeError: a leaf that is not an array (named by path).

    >>> import numpy as np, tempfile, os
    >>> from ramie.serialization import save_safetensors, load_safetensors
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "model.safetensors")
    >>> save_safetensors(path, {"dense": {"kernel": np.eye(2, dtype=np.float32)}})
    >>> load_safetensors(path)["dense"]["kernel"].shape
    (2, 2)
    >>> tmp.cleanup()
    """
    arrays = {}
    for name, leaf in flatten_keys(state).items():
        where = name.replace(".", "/")
        if not isinstance(leaf, (np.ndarray, np.generic, jax.Array)):
            raise _errors.UnsupportedTypeError(
                _errors.SAFETENSORS_LEAF.format(path=where, type_name=type(leaf).__name__)
            )
        arrays[name] = as_host_array(leaf, tuple(name.split(".")))
    try:
        safetensors.numpy.save_file(arrays, os.fspath(path), metadata=dict(metadata or {}))
    except (safetensors.SafetensorError, KeyError, ValueError, TypeError) as e:
        bad = [n for n, a in arrays.items() if not _writes(a)]
        if bad:
            raise _errors.UnsupportedTypeError(
                _errors.SAFETENSORS_DTYPE.format(
                    path=bad[0].replace(".", "/"),
                    dtype=arrays[bad[0]].dtype,
                    supported="the float, int, uint, bool, complex64 and bfloat16/float8 types",
                )
            ) from e
        raise _errors.SerializationError(f"Cannot write safetensors file {path}: {e}") from e


def _writes(arr: np.ndarray) -> bool:
    try:
        safetensors.numpy.save({"x": arr[:0].reshape(-1) if arr.ndim else arr.reshape(1)[:0]})
    except Exception:
        return False
    return True


def load_safetensors(path: str | os.PathLike, target: Any = None, *, strict: bool = True) -> Any:
    """Read a safetensors file: a nested dict of numpy arrays, or restored into ``target``.

    With a ``target`` (a State, pure dict, or abstract tree from ``jax.eval_shape``)
    keys, shapes and dtypes are checked as in ``from_state_dict``. Only a regular
    file (or a symlink to one) is read; its header is checked against the file's
    size before anything is allocated, and any malformed input raises
    ``MalformedDataError`` naming the file and the tensor.

    Args:
        path: the file to read.
        target: optional tree (real or abstract) to restore into.
        strict: if False, restore the paths that match and warn about the rest.

    Returns:
        Nested dicts of numpy arrays, or a copy of ``target`` with the file's values.

    Raises:
        MalformedDataError: the file is not a valid safetensors file.
        StateMismatchError: keys, shapes or dtypes differ from ``target``.

    >>> import numpy as np, tempfile, os
    >>> from ramie.serialization import save_safetensors, load_safetensors
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "m.safetensors")
    >>> save_safetensors(path, {"b": np.ones(2, np.float32)})
    >>> load_safetensors(path, {"b": np.zeros(2, np.float32)})["b"].tolist()
    [1.0, 1.0]
    >>> tmp.cleanup()
    """
    flat, _ = read_safetensors(path)
    nested = unflatten_keys(flat, source=f"safetensors file {path}")
    if target is None:
        return nested
    return restore_values(target, nested, strict=strict, what="load_safetensors()", load=convert)
