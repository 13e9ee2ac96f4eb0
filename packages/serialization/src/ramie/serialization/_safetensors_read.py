"""Reading safetensors files defensively: every check before any allocation.

The format: an 8-byte little-endian header length, a JSON header mapping each
tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (plus an
optional ``"__metadata__"`` of strings), then the tensors' bytes. The header is
checked against the file's real size (``fstat`` of the descriptor that is then
read, which must be a regular file): the tensors must tile the data exactly, each
dtype must be one of the table below, each shape must match its byte count.
Only then is an array allocated per tensor and read into with ``readinto``.
BOOL tensors must hold only bytes 0 and 1. Anything else raises
``MalformedDataError`` naming the file and the tensor. (Writing uses the
safetensors library itself.)
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from . import _checkpoint_io as io
from . import _dtypes, _errors

# safetensors dtype names -> ramie's dtype table (ml_dtypes names for the float8 types).
DTYPES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "uint16",
    "I16": "int16",
    "F16": "float16",
    "BF16": "bfloat16",
    "U32": "uint32",
    "I32": "int32",
    "F32": "float32",
    "U64": "uint64",
    "I64": "int64",
    "F64": "float64",
    "C64": "complex64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2": "float8_e5m2",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "F8_E8M0": "float8_e8m0fnu",
}
MAX_HEADER = 100 << 20  # the safetensors library's own limit


class _Bad(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Bad(f"the header names {key!r:.60} twice")
        out[key] = value
    return out


def _entry(name: str, info: Any) -> tuple[int, int, tuple[int, ...], np.dtype]:
    where = f"tensor {name!r:.80}"
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise _Bad(f"{where} is not {{dtype, shape, data_offsets}}")
    code = info["dtype"]
    dtype_name = DTYPES.get(code) if isinstance(code, str) else None
    dtype = _dtypes.dtype_by_name(dtype_name) if dtype_name else None
    if dtype is None:
        raise _Bad(f"{where} has dtype {code!r:.40}, not one ramie reads ({', '.join(DTYPES)})")
    offsets = info["data_offsets"]
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(type(x) is int for x in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        raise _Bad(f"{where} has data_offsets {offsets!r:.60}, not [begin, end]")
    try:
        dims, _ = _dtypes.check_header(info["shape"], dtype_name, offsets[1] - offsets[0])
    except ValueError as e:
        raise _Bad(f"{where}: {e}") from None
    return offsets[0], offsets[1], dims, dtype


def _read(f: Any, size: int) -> tuple[dict[str, np.ndarray], dict | None]:
    if size < 8:
        raise _Bad(f"it holds {size} bytes, fewer than the 8 of the header length")
    length = int.from_bytes(f.read(8), "little")
    if length > min(size - 8, MAX_HEADER):
        raise _Bad(f"the header claims {length} bytes, but {size - 8} follow the length")
    raw = f.read(length)
    if len(raw) != length:
        raise _Bad("the file ended inside the header")
    try:
        header = json.loads(raw, object_pairs_hook=_pairs)
    except _Bad:
        raise
    except (ValueError, RecursionError) as e:
        raise _Bad(f"the header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _Bad(f"the header is a {type(header).__name__}, not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise _Bad("__metadata__ is not a mapping of strings to strings")
    entries = sorted(
        ((_entry(name, info), name) for name, info in header.items()),
        key=lambda e: (e[0][0], e[0][1]),
    )
    end = 0
    for (begin, stop, _, _), name in entries:
        if begin != end:
            raise _Bad(f"tensor {name!r:.80} starts at {begin}, not at {end}: gap or overlap")
        end = stop
    if end != size - 8 - length:
        raise _Bad(f"the tensors cover {end} bytes of data, but the file holds {size - 8 - length}")
    arrays = {}
    for (begin, stop, dims, dtype), name in entries:
        try:
            arr = io.aligned_empty(dims, dtype)
        except MemoryError:
            raise _Bad(f"tensor {name!r:.80} needs {stop - begin} bytes: out of memory") from None
        view = memoryview(arr.reshape(-1).view(np.uint8))
        while len(view):
            n = f.readinto(view)
            if not n:
                raise _Bad(f"the file ended inside tensor {name!r:.80}")
            view = view[n:]
        if dtype == np.bool_ and (arr.view(np.uint8) > 1).any():
            raise _Bad(f"tensor {name!r:.80} is BOOL but holds bytes other than 0 and 1")
        arrays[name] = arr
    return {name: arrays[name] for name in header}, metadata


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict | None]:
    """The tensors (by flat name, in header order) and metadata of a safetensors file."""
    try:
        f, size = io.open_regular(path)
    except io.NotRegularFile as e:
        raise _errors.MalformedDataError(
            _errors.SAFETENSORS_MALFORMED.format(file=path, detail=f"it is a {e.kind}")
        ) from None
    with f:
        try:
            return _read(f, size)
        except _Bad as e:
            raise _errors.MalformedDataError(
                _errors.SAFETENSORS_MALFORMED.format(file=path, detail=e)
            ) from None
