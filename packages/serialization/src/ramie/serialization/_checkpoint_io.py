"""The files of one checkpoint step: writing them durably and reading them back safely.

A step directory holds

- ``state.msgpack``: the state's bytes, exactly what ``to_bytes`` returns (Flax
  reads it with ``flax.serialization.msgpack_restore``);
- ``index.msgpack``: the tree's skeleton (non-array leaves inline, arrays as
  references) and, per array, its shape, dtype and where its bytes sit in
  ``state.msgpack``, so restoring reads each array straight into its buffer;
- ``metadata.json``: the user's metadata;
- ``COMMIT``: written last; JSON naming the step and every other file with its
  size and CRC-32, then a line ``crc32 <hex>`` holding the CRC-32 of the JSON
  itself, so damage to the marker is detected like damage to any other file.
  A directory without a ``COMMIT`` is an incomplete step (being written or copied).

Every file is opened without following it into a FIFO or device: ``open_regular``
opens non-blocking, checks ``fstat`` says a regular file (symlinks are resolved by
the open, so the target is what is checked), and reads only through that descriptor.

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
import queue
import re
import stat
import threading
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
VERSION = 2  # 2: the COMMIT carries its own CRC; version-1 steps (without it) still restore
INDEX_VERSION = 1
PIECE = 64 << 20  # bytes per write/read call (and per CRC task)
SMALL = 1 << 20  # parts smaller than this are batched into one write
MAX_SMALL_FILE = 256 << 20  # COMMIT, index and metadata are never larger than this


class _Crc:
    """A running CRC-32 computed on a worker thread, in the order buffers are fed.

    A plain thread and queue rather than an executor: ``concurrent.futures``
    refuses new work once the interpreter starts exiting, and a background save
    must still finish then.
    """

    def __init__(self) -> None:
        self.value = 0
        self._error: BaseException | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ramie-crc", daemon=True)
        self._thread.start()

    def feed(self, buf: Any) -> None:
        self._queue.put(buf)

    def _run(self) -> None:
        while (buf := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.value = crc32(buf, self.value)
                except BaseException as e:  # re-raised by result()
                    self._error = e

    def close(self) -> None:
        """Stop the worker (idempotent); ``result()`` does it too."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def result(self) -> int:
        self.close()
        if self._error is not None:
            raise self._error
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
    try:
        return _write_parts(path, parts, crc)
    finally:
        crc.close()


def _write_parts(path: Path, parts: list, crc: _Crc) -> dict[str, int]:
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


class Corrupt(ValueError):
    """A file of a step fails a check: ``name`` is the file, the message what failed."""

    def __init__(self, name: str, detail: str):
        super().__init__(detail)
        self.name = name


_KINDS = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "FIFO (named pipe)"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


class NotRegularFile(OSError):
    """The path exists but is not a regular file (FIFO, device, directory, socket)."""

    def __init__(self, path: Path | str, kind: str):
        super().__init__(_errors.NOT_REGULAR.format(file=path, kind=kind))
        self.path, self.kind = Path(path), kind


def open_regular(path: Path | str) -> tuple[Any, int]:
    """Open ``path`` for reading if it is a regular file; return ``(file, size)``.

    The open never blocks (``O_NONBLOCK``: a FIFO without a writer would block a
    plain open forever) and follows symlinks, so ``fstat`` checks what the data
    is actually read from. Raises ``NotRegularFile`` (an ``OSError``) otherwise.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((k for test, k in _KINDS if test(st.st_mode)), "special file")
            raise NotRegularFile(path, kind)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=0), st.st_size
    except BaseException:
        os.close(fd)
        raise


def read_file(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, refusing one larger than ``limit``."""
    f, size = open_regular(path)
    with f:
        if size > limit:
            raise Corrupt(path.name, f"it holds {size} bytes, more than the {limit} allowed")
        data = f.read(size + 1)
    if len(data) != size:
        raise Corrupt(path.name, f"it changed size while being read ({size} -> {len(data)})")
    return data


def encode_commit(step: int, files: dict) -> bytes:
    """The bytes of a ``COMMIT`` marker: JSON, then the JSON's own CRC-32 on a last line."""
    body = json.dumps(
        {"format": FORMAT, "version": VERSION, "step": step, "files": files}, indent=1
    ).encode()
    return body + b"\ncrc32 %08x\n" % crc32(body)


_TRAILER = re.compile(rb"\ncrc32 ([0-9a-f]{8})\n\Z")


def parse_commit(data: bytes, step: int) -> dict:
    """Check a ``COMMIT`` marker's bytes for ``step``; return it or raise ``Corrupt``."""
    trailer = _TRAILER.search(data)
    body = data[: trailer.start()] if trailer else data
    if trailer and int(trailer.group(1), 16) != crc32(body):
        raise Corrupt(COMMIT_FILE, "its own CRC-32 (last line) does not match its contents")
    try:
        commit = json.loads(body)
    except ValueError as e:
        raise Corrupt(COMMIT_FILE, f"it is not valid JSON ({e})") from None
    expected_version = VERSION if trailer else 1
    if not isinstance(commit, dict) or commit.get("format") != FORMAT:
        raise Corrupt(COMMIT_FILE, f"it is not a {FORMAT} marker")
    if commit.get("version") != expected_version:
        raise Corrupt(COMMIT_FILE, f"it has version {commit.get('version')!r:.20}")
    if commit.get("step") != step:
        raise Corrupt(COMMIT_FILE, f"it names step {commit.get('step')!r:.20}, not {step}")
    files = commit.get("files")
    if not isinstance(files, dict) or not {STATE_FILE, INDEX_FILE} <= set(files):
        raise Corrupt(COMMIT_FILE, f"it does not list {STATE_FILE} and {INDEX_FILE}")
    for name, info in files.items():
        if name not in (STATE_FILE, INDEX_FILE, METADATA_FILE):
            raise Corrupt(COMMIT_FILE, f"it lists an unknown file {name!r:.40}")
        if not (
            isinstance(info, dict)
            and type(info.get("size")) is int
            and type(info.get("crc32")) is int
            and info["size"] >= 0
        ):
            raise Corrupt(COMMIT_FILE, f"its record of {name} is not {{size, crc32}}")
    return commit


def read_commit(step_dir: Path, step: int) -> dict:
    """The checked ``COMMIT`` of ``step_dir``; raises ``Corrupt`` or ``OSError``."""
    return parse_commit(read_file(step_dir / COMMIT_FILE, MAX_SMALL_FILE), step)


def read_small(step_dir: Path, name: str, commit: dict, verify: bool) -> bytes:
    """Read one of the small files of a committed step, checking size (and CRC)."""
    info = commit["files"][name]
    if info["size"] > MAX_SMALL_FILE:
        raise Corrupt(COMMIT_FILE, f"it claims {info['size']} bytes for {name}")
    data = read_file(step_dir / name, MAX_SMALL_FILE)
    if len(data) != info["size"]:
        raise Corrupt(name, f"it holds {len(data)} bytes, the COMMIT records {info['size']}")
    if verify and crc32(data) != info["crc32"]:
        raise Corrupt(name, "its CRC-32 does not match the COMMIT record")
    return data


def write_index(path: Path, skeleton: Any, leaves: list) -> dict[str, int]:
    """Write the index (skeleton + array table) and fsync it."""
    data = msgpack.packb(
        {"version": INDEX_VERSION, "tree": skeleton, "leaves": leaves}, use_bin_type=True
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
    if not isinstance(index, dict) or index.get("version") != INDEX_VERSION:
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
            raise Corrupt(STATE_FILE, "it ended early")
        view = view[n:]


PAGE = 4096
ALIGN_FROM = 1 << 16  # smaller arrays are not page-aligned: the padding would dominate


def aligned_empty(dims: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array whose data starts on a page boundary (when large).

    JAX's CPU backend adopts such host buffers without copying them
    (``jax.device_put``), so restoring into jax arrays costs no extra copy. Arrays
    under ``ALIGN_FROM`` bytes (empty ones above all) get a plain allocation, so
    the memory a restore takes stays bounded by the file's size, whatever the
    number of leaves.
    """
    nbytes = math.prod(dims) * dtype.itemsize
    if nbytes < ALIGN_FROM:
        return np.empty(dims, dtype)
    buf = np.empty(nbytes + PAGE, np.uint8)
    start = -buf.ctypes.data % PAGE
    return buf[start : start + nbytes].view(dtype).reshape(dims)


def read_leaves(
    path: Path, leaves: list, size: int, expected_crc: int | None
) -> list[np.ndarray | np.generic]:
    """Read every array of ``leaves`` from ``path``; check the file's CRC unless it is None.

    Raises ``Corrupt`` when the file is not what the ``COMMIT`` records.
    """
    crc = _Crc() if expected_crc is not None else None
    try:
        return _read_leaves(path, leaves, size, expected_crc, crc)
    finally:
        if crc is not None:
            crc.close()


def _read_leaves(
    path: Path, leaves: list, size: int, expected_crc: int | None, crc: _Crc | None
) -> list[np.ndarray | np.generic]:
    out: list[Any] = []
    pos = 0
    f, real_size = open_regular(path)
    if real_size != size:
        f.close()
        raise Corrupt(STATE_FILE, f"it holds {real_size} bytes, the COMMIT records {size}")
    with f:

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
                raise Corrupt(STATE_FILE, "it is longer than the COMMIT records")
            if crc.result() != expected_crc:
                raise Corrupt(STATE_FILE, "its CRC-32 does not match the COMMIT record")
    return out


def verify_file(path: Path, size: int, expected_crc: int) -> None:
    """Check that ``path`` holds ``size`` bytes whose CRC-32 is ``expected_crc``."""
    f, real_size = open_regular(path)
    with f:
        if real_size != size:
            raise Corrupt(path.name, f"it holds {real_size} bytes, the COMMIT records {size}")
        buf = memoryview(bytearray(min(PIECE, max(size, 1))))
        value, left = 0, size
        while left:
            n = f.readinto(buf[: min(left, len(buf))])
            if not n:
                raise Corrupt(path.name, "it ended early")
            value = crc32(buf[:n], value)
            left -= n
    if value != expected_crc:
        raise Corrupt(path.name, "its CRC-32 does not match the COMMIT record")
