"""The files of one checkpoint step: writing them durably and reading them back safely.

A step directory holds

- ``state.msgpack``: the state's bytes, exactly what ``to_bytes`` returns (Flax
  reads it with ``flax.serialization.msgpack_restore``);
- ``index.msgpack``: the tree's skeleton (non-array leaves inline, arrays as
  references) and, per array, its shape, dtype and where its bytes sit in
  ``state.msgpack``, so restoring reads each array straight into its buffer;
- ``metadata.json``: the user's metadata;
- ``COMMIT``: written last; JSON naming the step and every other file with its
  size and CRC-32. A directory without a valid ``COMMIT`` is not a checkpoint.

Array bytes are written from the arrays' own memory and read into freshly
allocated arrays, while a second thread computes the CRC of what passed, so
neither direction copies the data more than the file system does. The CRC is
the standard CRC-32 (what ``zlib.crc32`` returns). With the ``fast`` extra
(``pip install 'ramie-serialization[fast]'``) ISA-L computes it with the CPU's
carry-less multiply, ~25 GB/s on one core where zlib 1.2 manages ~4, so verifying
a restore from the page cache costs almost nothing on top of the read; without
it, zlib does (same checksums, files are interchangeable).
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

try:
    from isal.isal_zlib import crc32
except ImportError:  # without the `fast` extra: zlib gives the same checksums, slower
    from zlib import crc32

from . import _dtypes, _errors
from ._msgpack import EXT_COMPLEX, EXT_LEAF_REF, EXT_NDARRAY, EXT_NPSCALAR, ext_hook

STATE_FILE, INDEX_FILE, METADATA_FILE, COMMIT_FILE = (
    "state.msgpack",
    "index.msgpack",
    "metadata.json",
    "COMMIT",
)
FORMAT = "ramie-checkpoint"
VERSION = 1
PIECE = 64 << 20  # bytes per write/read call (and per CRC task)
SMALL = 1 << 20  # parts smaller than this are batched into one write
MAX_SMALL_FILE = 256 << 20  # COMMIT, index and metadata are never larger than this


class _Crc:
    """A running CRC-32 computed on a worker thread, in the order buffers are fed."""

    def __init__(self) -> None:
        self.value = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ramie-crc")
        self._futures: list[Future] = []

    def feed(self, buf: Any) -> None:
        self._futures.append(self._pool.submit(self._update, buf))

    def _update(self, buf: Any) -> None:
        self.value = crc32(buf, self.value)

    def result(self) -> int:
        self._pool.shutdown(wait=True)
        for future in self._futures:
            future.result()
        return self.value


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(f: Any, buf: memoryview) -> None:
    while len(buf):
        written = f.write(buf)
        buf = buf[written:]


def write_parts(path: Path, parts: list) -> dict[str, int]:
    """Write ``parts`` (bytes and array buffers) to ``path``, fsync it; return size and CRC."""
    crc = _Crc()
    size = 0
    pending = bytearray()
    with open(path, "wb", buffering=0) as f:

        def flush() -> None:
            if pending:
                data = bytes(pending)
                pending.clear()
                crc.feed(data)
                _write_all(f, memoryview(data))

        for part in parts:
            size += len(part)
            if len(part) < SMALL:
                pending.extend(part)
                if len(pending) >= SMALL:
                    flush()
                continue
            flush()
            view = memoryview(part)
            for start in range(0, len(view), PIECE):
                piece = view[start : start + PIECE]
                crc.feed(piece)
                _write_all(f, piece)
        flush()
        os.fsync(f.fileno())
    return {"size": size, "crc32": crc.result()}


def write_small(path: Path, data: bytes) -> dict[str, int]:
    """Write a small file and fsync it; return its size and CRC."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return {"size": len(data), "crc32": crc32(data)}


def read_commit(step_dir: Path, step: int) -> dict | None:
    """The parsed ``COMMIT`` of ``step_dir`` if it is a valid marker for ``step``, else None.

    Valid means: JSON of the ramie checkpoint format naming this step, and every
    file it lists present with the recorded size (CRCs are checked on restore).
    """
    try:
        path = step_dir / COMMIT_FILE
        if path.stat().st_size > MAX_SMALL_FILE:
            return None
        commit = json.loads(path.read_bytes())
        if not (
            isinstance(commit, dict)
            and commit.get("format") == FORMAT
            and commit.get("version") == VERSION
            and commit.get("step") == step
            and isinstance(commit.get("files"), dict)
            and STATE_FILE in commit["files"]
            and INDEX_FILE in commit["files"]
        ):
            return None
        for name, info in commit["files"].items():
            if name not in (STATE_FILE, INDEX_FILE, METADATA_FILE):
                return None
            if (step_dir / name).stat().st_size != info["size"]:
                return None
            if not isinstance(info["crc32"], int):
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return commit


def read_small(step_dir: Path, name: str, commit: dict, verify: bool) -> bytes:
    """Read one of the small files of a committed step, checking size and CRC."""
    info = commit["files"][name]
    if info["size"] > MAX_SMALL_FILE:
        raise _corrupt(step_dir, name, commit, f"it claims {info['size']} bytes")
    data = (step_dir / name).read_bytes()
    if len(data) != info["size"]:
        raise _corrupt(step_dir, name, commit, f"{len(data)} bytes, expected {info['size']}")
    if verify and crc32(data) != info["crc32"]:
        raise _corrupt(step_dir, name, commit, "its CRC-32 does not match the COMMIT record")
    return data


def _corrupt(step_dir: Path, name: str, commit: dict, detail: str) -> _errors.CheckpointError:
    return _errors.CheckpointCorruptError(
        _errors.CORRUPT_FILE.format(file=step_dir / name, detail=detail, step=commit.get("step"))
    )


def write_index(path: Path, skeleton: Any, leaves: list) -> dict[str, int]:
    """Write the index (skeleton + array table) and fsync it."""
    data = msgpack.packb(
        {"version": VERSION, "tree": skeleton, "leaves": leaves}, use_bin_type=True
    )
    return write_small(path, data)


class Ref:
    """Stands for array leaf ``number`` in an index skeleton."""

    __slots__ = ("number",)

    def __init__(self, number: int):
        self.number = number


class Pending:
    """An array not read yet: its shape and dtype, for checking against a target."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: tuple, dtype: np.dtype):
        self.shape, self.dtype = shape, dtype


def _index_hook(code: int, payload: bytes) -> Any:
    if code == EXT_LEAF_REF:
        if len(payload) != 4:
            raise ValueError("a leaf reference must hold 4 bytes")
        return Ref(int.from_bytes(payload, "big"))
    if code == EXT_COMPLEX:
        return ext_hook(code, payload)
    raise ValueError(f"unexpected ext type {code} in a checkpoint index")


def parse_index(data: bytes, state_size: int) -> tuple[Any, list]:
    """Parse and check an index against the size of ``state.msgpack``.

    Returns ``(skeleton, leaves)`` with leaves as ``(kind, shape, dtype, ranges)``.
    Ranges must lie inside the state file, in increasing order and without
    overlap, so reading them allocates no more than the file holds.
    """
    try:
        index = msgpack.unpackb(data, raw=False, ext_hook=_index_hook)
    except _errors.SerializationError:
        raise
    except Exception as e:
        raise ValueError(f"not valid msgpack ({type(e).__name__}: {e})") from None
    if not isinstance(index, dict) or index.get("version") != VERSION:
        raise ValueError("not a version-1 ramie checkpoint index")
    raw = index.get("leaves")
    if not isinstance(raw, list):
        raise ValueError("its leaf table is not a list")
    leaves = []
    end = 0
    for i, entry in enumerate(raw):
        if not (isinstance(entry, list) and len(entry) == 4):
            raise ValueError(f"leaf {i} is not [kind, shape, dtype, ranges]")
        kind, shape, name, ranges = entry
        if kind not in (EXT_NDARRAY, EXT_NPSCALAR) or not isinstance(ranges, list):
            raise ValueError(f"leaf {i} has kind {kind!r}")
        total = 0
        for r in ranges:
            if not (isinstance(r, list) and len(r) == 2 and all(type(x) is int for x in r)):
                raise ValueError(f"leaf {i} has a range {r!r:.40} that is not [offset, size]")
            offset, size = r
            if offset < end or size < 0 or offset + size > state_size:
                raise ValueError(f"leaf {i} has the range {r} (file size {state_size})")
            end = offset + size
            total += size
        dims, dtype = _dtypes.check_header(shape, name, total)
        if kind == EXT_NPSCALAR and dims != ():
            raise ValueError(f"leaf {i} is a scalar of shape {dims}")
        leaves.append((kind, dims, dtype, ranges))
    skeleton = index.get("tree")
    _check_refs(skeleton, len(leaves))
    return skeleton, leaves


def _check_refs(skeleton: Any, count: int) -> None:
    seen: set[int] = set()
    for node, key, value in iter_nodes(skeleton):
        del node, key
        if isinstance(value, Ref):
            if value.number >= count or value.number in seen:
                raise ValueError(f"the tree refers to leaf {value.number} wrongly")
            seen.add(value.number)
    if len(seen) != count:
        raise ValueError(f"the tree refers to {len(seen)} of its {count} leaves")


def iter_nodes(tree: Any):
    """Yield ``(container, key, value)`` for every entry, root included (container None)."""
    stack = [(None, None, tree)]
    while stack:
        node, key, value = stack.pop()
        yield node, key, value
        if isinstance(value, dict):
            stack.extend((value, k, v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((value, k, v) for k, v in enumerate(value))


def fill(skeleton: Any, make: Any) -> Any:
    """Replace every ``Ref`` in ``skeleton`` (in place) by ``make(number)``."""
    if isinstance(skeleton, Ref):
        return make(skeleton.number)
    for node, key, value in list(iter_nodes(skeleton)):
        if isinstance(value, Ref) and node is not None:
            node[key] = make(value.number)
    return skeleton


def _read_exact(f: Any, view: memoryview) -> None:
    while len(view):
        n = f.readinto(view)
        if not n:
            raise EOFError("the file ended early")
        view = view[n:]


PAGE = 4096


def aligned_empty(dims: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array whose data starts on a page boundary.

    JAX's CPU backend adopts such host buffers without copying them
    (``jax.device_put``), so restoring into jax arrays costs no extra copy.
    """
    nbytes = math.prod(dims) * dtype.itemsize
    buf = np.empty(nbytes + PAGE, np.uint8)
    start = -buf.ctypes.data % PAGE
    return buf[start : start + nbytes].view(dtype).reshape(dims)


def read_leaves(
    path: Path, leaves: list, size: int, expected_crc: int | None
) -> list[np.ndarray | np.generic]:
    """Read every array of ``leaves`` from ``path``; check the file's CRC unless it is None."""
    crc = _Crc() if expected_crc is not None else None
    out: list[Any] = []
    pos = 0
    with open(path, "rb", buffering=0) as f:

        def skip_to(offset: int) -> None:
            nonlocal pos
            if crc is None:
                f.seek(offset)
                pos = offset
                return
            while pos < offset:
                gap = memoryview(bytearray(min(PIECE, offset - pos)))
                _read_exact(f, gap)
                crc.feed(gap)
                pos += len(gap)
            pos = offset

        for kind, dims, dtype, ranges in leaves:
            arr = aligned_empty(dims, dtype)
            flat = memoryview(arr.reshape(-1).view(np.uint8))
            filled = 0
            for offset, nbytes in ranges:
                skip_to(offset)
                for start in range(0, nbytes, PIECE):
                    piece = flat[filled + start : filled + min(nbytes, start + PIECE)]
                    _read_exact(f, piece)
                    if crc is not None:
                        crc.feed(piece)
                filled += nbytes
                pos = offset + nbytes
            out.append(arr[()] if kind == EXT_NPSCALAR else arr)
        if crc is not None:
            skip_to(size)
            if f.read(1):
                raise ValueError("the file is longer than recorded")
            if crc.result() != expected_crc:
                raise ValueError("its CRC-32 does not match the COMMIT record")
    return out
