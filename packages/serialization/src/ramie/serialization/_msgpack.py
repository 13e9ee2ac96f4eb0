"""The msgpack format, byte for byte what ``flax.serialization`` writes, and a safe reader.

Writing does not build the bytes with ``msgpack.packb``: it produces a list of
*segments*, small msgpack headers made with a ``msgpack.Packer`` and the array
buffers themselves, so ``to_bytes`` copies each array once and a checkpoint
writes them to a file without copying at all. The layout:

- a mapping is a msgpack map, in the state dict's key order;
- an array is ext type 1 whose payload is the msgpack array
  ``[shape, dtype name, C-order bytes]``; a numpy scalar the same as ext 3;
  a Python complex is ext 2 holding ``[real, imag]``;
- an array over ``MAX_CHUNK_SIZE`` bytes is the map
  ``{"__msgpack_chunked_array__": True, "shape": {"0": ...}, "chunks": {"0": ...}}``
  of flat pieces.

Reading uses msgpack's C unpacker with its size limits derived from the input,
checks every ext payload (dtype name in a fixed table, element count against
the bytes given) before making an array, and turns any failure into
``MalformedDataError``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any

import jax
import msgpack
import numpy as np

from . import _dtypes, _errors
from ._state_dict import MAX_DEPTH, restore_values, to_state_dict

MAX_CHUNK_SIZE = 2**30
EXT_NDARRAY, EXT_COMPLEX, EXT_NPSCALAR = 1, 2, 3
EXT_LEAF_REF = 64  # only in checkpoint index files: "array leaf number n"
CHUNKED = "__msgpack_chunked_array__"
_FIXEXT = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
_SCALARS = (type(None), bool, int, float, str, bytes)


def ext_header(code: int, length: int) -> bytes:
    """The msgpack header of an ext object of type ``code`` with a ``length``-byte payload."""
    if length in _FIXEXT:
        return bytes((_FIXEXT[length], code))
    if length < 2**8:
        return struct.pack(">BBb", 0xC7, length, code)
    if length < 2**16:
        return struct.pack(">BHb", 0xC8, length, code)
    return struct.pack(">BIb", 0xC9, length, code)


def bin_header(length: int) -> bytes:
    """The msgpack header of a bin object of ``length`` bytes."""
    if length < 2**8:
        return struct.pack(">BB", 0xC4, length)
    if length < 2**16:
        return struct.pack(">BH", 0xC5, length)
    return struct.pack(">BI", 0xC6, length)


class Segments:
    """Collects the pieces of an encoded tree; arrays are kept as buffers, not copied.

    ``leaves`` records, for every array leaf, ``[kind, shape, dtype name, ranges]``
    where ``ranges`` are the ``[offset, nbytes]`` of its data in the output, so a
    checkpoint can read an array straight from its place in the file.
    """

    def __init__(self) -> None:
        self.parts: list[bytes | memoryview] = []
        self.size = 0
        self.leaves: list[list] = []
        self._packer = msgpack.Packer(use_bin_type=True, autoreset=True)

    def add(self, part: bytes | memoryview) -> None:
        self.parts.append(part)
        self.size += len(part)

    def pack(self, value: Any) -> None:
        self.add(self._packer.pack(value))

    def map_header(self, n: int) -> None:
        self.add(self._packer.pack_map_header(n))

    def array(self, code: int, arr: np.ndarray) -> list[int]:
        """Append one ext 1/3 array; return the ``[offset, nbytes]`` of its data."""
        head = b"\x93" + self._packer.pack(list(arr.shape)) + self._packer.pack(arr.dtype.name)
        head += bin_header(arr.nbytes)
        self.add(ext_header(code, len(head) + arr.nbytes) + head)
        where = [self.size, arr.nbytes]
        if arr.nbytes:
            self.add(memoryview(arr.reshape(-1).view(np.uint8)))
        return where

    def leaf(self, kind: int, arr: np.ndarray, ranges: list[list[int]]) -> msgpack.ExtType:
        """Record an array leaf; return the reference that stands for it in a skeleton."""
        self.leaves.append([kind, list(arr.shape), arr.dtype.name, ranges])
        return msgpack.ExtType(EXT_LEAF_REF, struct.pack(">I", len(self.leaves) - 1))

    def join(self) -> bytes:
        return b"".join(self.parts)


def as_host_array(x: Any, path: tuple) -> np.ndarray:
    """``x`` as a C-contiguous, native-byte-order numpy array of a supported dtype."""
    arr = np.asarray(x)
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "<" and not arr.dtype.isnative):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not _dtypes.is_supported(arr.dtype):
        raise _errors.UnsupportedTypeError(
            _errors.BAD_DTYPE_TO_WRITE.format(
                path=_errors.format_path(path), dtype=arr.dtype, supported=_dtypes.SUPPORTED
            )
        )
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def encode(tree: Any, segments: Segments, path: tuple = ()) -> Any:
    """Append the msgpack encoding of the state dict ``tree`` to ``segments``.

    Returns the tree's *skeleton*: the same nesting with each array replaced by
    a reference to its entry in ``segments.leaves`` (what a checkpoint index holds).
    """
    if isinstance(tree, Mapping):
        if len(path) > MAX_DEPTH:
            raise _errors.UnsupportedTypeError(
                _errors.TOO_DEEP.format(limit=MAX_DEPTH, path=_errors.format_path(path[:8]))
            )
        segments.map_header(len(tree))
        skeleton = {}
        for k, v in tree.items():
            if isinstance(k, int) and not isinstance(k, bool):
                k = str(k)
            if not isinstance(k, str):
                raise _errors.UnsupportedTypeError(
                    _errors.BAD_KEY.format(
                        path=_errors.format_path(path), key=k, type_name=type(k).__name__
                    )
                )
            segments.pack(k)
            skeleton[k] = encode(v, segments, (*path, k))
        return skeleton
    if isinstance(tree, (list, tuple)):
        segments.add(msgpack.Packer().pack_array_header(len(tree)))
        return [encode(v, segments, (*path, str(i))) for i, v in enumerate(tree)]
    if isinstance(tree, (np.ndarray, jax.Array)):
        if isinstance(tree, jax.Array) and _dtypes.is_key_dtype(tree.dtype):
            tree = jax.random.key_data(tree)
        arr = as_host_array(tree, path)
        if arr.nbytes > MAX_CHUNK_SIZE:
            return segments.leaf(EXT_NDARRAY, arr, _encode_chunked(arr, segments, path))
        return segments.leaf(EXT_NDARRAY, arr, [segments.array(EXT_NDARRAY, arr)])
    if isinstance(tree, np.generic):
        arr = as_host_array(tree, path)
        return segments.leaf(EXT_NPSCALAR, arr, [segments.array(EXT_NPSCALAR, arr)])
    if isinstance(tree, complex):
        payload = msgpack.packb((tree.real, tree.imag))
        segments.add(ext_header(EXT_COMPLEX, len(payload)) + payload)
        return msgpack.ExtType(EXT_COMPLEX, payload)
    if type(tree) in _SCALARS or isinstance(tree, (bool, str)):
        if isinstance(tree, int) and not -(2**63) <= tree < 2**64:
            raise _errors.UnsupportedTypeError(
                _errors.UNSUPPORTED_TYPE.format(
                    path=_errors.format_path(path), type_name="int beyond 64 bits", found=tree
                )
            )
        segments.pack(tree)
        return tree
    raise _unsupported(tree, path)


def _unsupported(x: Any, path: tuple) -> _errors.UnsupportedTypeError:
    if isinstance(x, jax.ShapeDtypeStruct) or (
        hasattr(x, "shape") and hasattr(x, "dtype") and not hasattr(x, "__array__")
    ):
        return _errors.UnsupportedTypeError(
            _errors.ABSTRACT_NOT_SERIALIZABLE.format(
                path=_errors.format_path(path),
                type_name=type(x).__name__,
                shape=getattr(x, "shape", "?"),
                dtype=getattr(x, "dtype", "?"),
            )
        )
    text = repr(x)
    return _errors.UnsupportedTypeError(
        _errors.UNSUPPORTED_TYPE.format(
            path=_errors.format_path(path),
            type_name=type(x).__name__,
            found=text if len(text) <= 60 else text[:57] + "...",
        )
    )


def _encode_chunked(arr: np.ndarray, segments: Segments, path: tuple) -> list[list[int]]:
    per_chunk = max(1, MAX_CHUNK_SIZE // arr.dtype.itemsize)
    flat = arr.reshape(-1)
    starts = range(0, flat.size, per_chunk)
    segments.map_header(3)
    segments.pack(CHUNKED)
    segments.pack(True)
    segments.pack("shape")
    encode({str(i): d for i, d in enumerate(arr.shape)}, segments, (*path, "shape"))
    segments.pack("chunks")
    segments.map_header(len(starts))
    ranges = []
    for i, start in enumerate(starts):
        segments.pack(str(i))
        ranges.append(segments.array(EXT_NDARRAY, flat[start : start + per_chunk]))
    return ranges


def msgpack_serialize(pytree: Any, in_place: bool = False) -> bytes:
    """Encode a tree of dicts, lists and array/scalar leaves as msgpack bytes.

    The low-level half of ``to_bytes``: no custom types, lists stay msgpack
    arrays. ``in_place`` is accepted for Flax compatibility; the tree is never
    modified either way.

    >>> import numpy as np
    >>> from ramie.serialization import msgpack_serialize, msgpack_restore
    >>> msgpack_restore(msgpack_serialize({"a": np.arange(3)}))["a"]
    array([0, 1, 2])
    """
    del in_place
    segments = Segments()
    encode(pytree, segments)
    return segments.join()


def to_bytes(tree: Any) -> bytes:
    """Serialize a tree (a State, a pure dict, lists, arrays...) to Flax-compatible msgpack bytes.

    Args:
        tree: a ``State``, or nested dicts / lists / tuples of arrays and scalars.

    Returns:
        The bytes ``flax.serialization.to_bytes`` writes for the same pure dict.

    Raises:
        UnsupportedTypeError: a leaf msgpack cannot hold (named by path).

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.serialization import to_bytes, from_bytes
    >>> state = core.State({"w": core.Param(jnp.arange(3.0))})
    >>> restored = from_bytes(state, to_bytes(state))
    >>> restored.w.value.tolist()
    [0.0, 1.0, 2.0]
    """
    return msgpack_serialize(to_state_dict(tree))


# -- reading -----------------------------------------------------------------
def _malformed(detail: str) -> _errors.MalformedDataError:
    return _errors.MalformedDataError(_errors.MALFORMED.format(detail=detail))


def parse_array_payload(payload: bytes) -> tuple[tuple[int, ...], np.dtype, bytes]:
    """Split an ext 1/3 payload into (shape, dtype, data bytes), checking all of it."""
    try:
        parts = msgpack.unpackb(payload, raw=True, max_array_len=_dtypes.MAX_NDIM)
    except Exception as e:
        detail = f"an array payload is not valid msgpack ({type(e).__name__}: {e})"
        raise _malformed(detail) from None
    if not isinstance(parts, list) or len(parts) != 3:
        raise _malformed(
            "an array payload must be [shape, dtype name, bytes], found "
            f"{type(parts).__name__} of length {len(parts) if hasattr(parts, '__len__') else '?'}"
        )
    shape, name, data = parts
    if not isinstance(data, bytes):
        raise _malformed(f"an array's data is a {type(data).__name__}, not bytes")
    try:
        dims, dtype = _dtypes.check_header(shape, name, len(data))
    except ValueError as e:
        raise _malformed(f"bad array header: {e}") from None
    return dims, dtype, data


def ext_hook(code: int, payload: bytes) -> Any:
    if code == EXT_NDARRAY or code == EXT_NPSCALAR:
        dims, dtype, data = parse_array_payload(payload)
        arr = np.frombuffer(data, dtype=dtype).reshape(dims)
        if code == EXT_NDARRAY:
            return arr
        if dims != ():
            raise _malformed(f"a numpy scalar (ext 3) has shape {dims}, not ()")
        return arr[()]
    if code == EXT_COMPLEX:
        try:
            parts = msgpack.unpackb(payload, max_array_len=2)
        except Exception as e:
            raise _malformed(f"a complex (ext 2) payload is not valid msgpack ({e})") from None
        if (
            not isinstance(parts, list)
            or len(parts) != 2
            or not all(type(p) in (float, int) for p in parts)
        ):
            raise _malformed(f"a complex (ext 2) must hold [real, imag], found {parts!r:.60}")
        return complex(parts[0], parts[1])
    raise _malformed(f"unknown msgpack ext type {code} (ramie/Flax use 1, 2 and 3)")


def msgpack_restore(encoded: bytes | bytearray | memoryview) -> Any:
    """Decode msgpack bytes (from ``msgpack_serialize``/``to_bytes`` or Flax) into a tree.

    Mappings come back as dicts, arrays as (read-only) numpy arrays. Malformed
    or hostile input raises ``MalformedDataError``.

    >>> from ramie.serialization import msgpack_restore, MalformedDataError
    >>> try:
    ...     msgpack_restore(b"\\x82\\xa1a")
    ... except MalformedDataError as e:
    ...     print("refused")
    refused
    """
    if not isinstance(encoded, (bytes, bytearray, memoryview)):
        raise TypeError(f"msgpack_restore() takes bytes, not {type(encoded).__name__}")
    try:
        tree = msgpack.unpackb(encoded, raw=False, ext_hook=ext_hook, strict_map_key=True)
    except _errors.SerializationError:
        raise
    except msgpack.ExtraData as e:
        raise _malformed(f"{len(e.extra)} unexpected byte(s) after the end of the data") from None
    except msgpack.StackError:
        raise _malformed("the data is nested too deeply") from None
    except Exception as e:
        raise _malformed(f"{type(e).__name__}: {e}") from None
    return _unchunk_all(tree)


def _unchunk_all(tree: Any) -> Any:
    """Replace every chunked-array map by its array, walking without recursion."""
    if isinstance(tree, dict) and CHUNKED in tree:
        return _unchunk(tree, ())
    if not isinstance(tree, (dict, list)):
        return tree
    stack: list[tuple[Any, tuple]] = [(tree, ())]
    while stack:
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in list(items):
            if isinstance(v, dict) and CHUNKED in v:
                node[k] = _unchunk(v, (*path, k))
            elif isinstance(v, (dict, list)):
                stack.append((v, (*path, k)))
    return tree


def _index_list(d: Any, what: str, path: tuple) -> list:
    if not isinstance(d, dict) or set(d) != {str(i) for i in range(len(d))}:
        raise _malformed(
            f"the chunked array at '{_errors.format_path(path)}' has a {what} that is not "
            'a map with keys "0", "1", ...'
        )
    return [d[str(i)] for i in range(len(d))]


def _unchunk(d: dict, path: tuple) -> np.ndarray:
    if set(d) != {CHUNKED, "shape", "chunks"} or d[CHUNKED] is not True:
        raise _malformed(f"the chunked array at '{_errors.format_path(path)}' has keys {list(d)}")
    shape = _index_list(d["shape"], "shape", path)
    chunks = _index_list(d["chunks"], "chunk list", path)
    if not chunks or not all(isinstance(c, np.ndarray) and c.ndim == 1 for c in chunks):
        raise _malformed(f"the chunks at '{_errors.format_path(path)}' are not 1-D arrays")
    if len({c.dtype for c in chunks}) != 1:
        raise _malformed(f"the chunks at '{_errors.format_path(path)}' differ in dtype")
    total = sum(c.nbytes for c in chunks)
    try:
        dims, dtype = _dtypes.check_header(shape, chunks[0].dtype.name, total)
    except ValueError as e:
        raise _malformed(f"the chunked array at '{_errors.format_path(path)}': {e}") from None
    assert math.prod(dims) * dtype.itemsize == total
    return np.concatenate(chunks).reshape(dims)


def from_bytes(target: Any, encoded: bytes, *, strict: bool = True) -> Any:
    """Restore ``encoded`` (from ``to_bytes`` or Flax) into the structure of ``target``.

    ``target`` may be real or abstract (``jax.eval_shape``); see ``from_state_dict``
    for what comes back and how mismatches are reported.

    Args:
        target: the tree to fill (its structure, shapes and dtypes are checked).
        encoded: bytes from ``to_bytes`` or ``flax.serialization.to_bytes``.
        strict: if False, restore the paths that match and warn about the rest.

    Returns:
        A copy of ``target`` holding the decoded values.

    Raises:
        MalformedDataError: ``encoded`` is not valid msgpack of this format.
        StateMismatchError: keys, shapes or dtypes differ from ``target`` (every path named).

    >>> import numpy as np
    >>> from ramie.serialization import to_bytes, from_bytes
    >>> from_bytes({"a": [np.zeros(1)]}, to_bytes({"a": [np.ones(1)]}))
    {'a': [array([1.])]}
    """
    from ._state_dict import convert

    return restore_values(
        target, msgpack_restore(encoded), strict=strict, what="from_bytes()", load=convert
    )
