"""Sharded checkpoints: every process writes only the shards it owns; restore onto any mesh.

A sharded checkpoint is a directory::

    process_<i>.bin    the raw bytes of the shards process i owns, one after another
    process_<i>.json   where each shard sits in the global array, and its CRC-32
    COMMIT             written last, by process 0, once every process has finished

Each shard is written once, by the process holding its first replica
(``replica_id == 0``): nothing is gathered to one host. All processes write into
one temporary directory; after a barrier process 0 checks that every process's
files are there, writes ``COMMIT``, fsyncs and renames the directory into place,
and a last barrier makes every process return only once the step is committed.
A crash at any point leaves no directory that looks committed.

Restoring reads, for each device of each process, only the saved shards that
overlap what that device needs (``jax.make_array_from_callback``), so a
checkpoint saved on 8 devices restores onto 4, onto 1 or onto another number
of processes. The processes must share the filesystem (on a cluster: a shared
or network file system). The files hold raw array bytes and JSON, nothing that
is executed.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from ramie.core import format_paths

from . import _checkpoint_io as io
from ._errors import CheckpointCorruptError, CheckpointError, StateMismatchError

FORMAT = "ramie-sharded-checkpoint"
VERSION = 1
COMMIT = "COMMIT"

NOT_COMMITTED = (
    "{path} is not a committed sharded checkpoint (no COMMIT file): it is being written, "
    "or its writers died before finishing. Restore another checkpoint, or save again."
)
ALREADY_THERE = (
    "save_sharded: {path} already exists. Sharded checkpoints are never overwritten: "
    "choose a new directory (e.g. one per step) or remove the old one first."
)
MISSING_PROCESS = (
    "save_sharded: process {process}'s files are missing from {tmp} after every process "
    "reported done: do all processes see the same filesystem? Processes sharing no "
    "filesystem cannot write one sharded checkpoint."
)
MISSING_LEAVES = (
    "restore_sharded: {path} has no array for these paths of the target:\n{paths}\n"
    "Its arrays are:\n{saved}\nRestore into the target it was saved from, or pass "
    "strict=False to keep the target's values for the missing paths."
)
MISMATCH = (
    "restore_sharded: '{leaf}' is {saved} in {path} but the target wants {wanted}. Restore "
    "into a target of the same shapes and dtypes (only the shardings may differ)."
)
CORRUPT_SHARD = (
    "restore_sharded: the shard of '{leaf}' at {index} in {file} fails its CRC-32 check "
    "(recorded {expected:08x}, read {found:08x}): the file is damaged. Restore another "
    "checkpoint."
)
TRUNCATED = (
    "restore_sharded: the shard of '{leaf}' at {index} in {file} should be {want} bytes "
    "but the file ends after {got}: it is truncated. Restore another checkpoint."
)
UNCOVERED = (
    "restore_sharded: the saved shards of '{leaf}' in {path} do not cover the region {region} "
    "(the checkpoint's files are damaged or incomplete). Restore another checkpoint."
)


def _key(path: tuple) -> str:
    """A leaf's name: its path without a Variable's trailing ``value`` attribute."""
    parts = []
    for k in path:
        if isinstance(k, jax.tree_util.GetAttrKey):
            if k.name == "value":
                continue
            parts.append(k.name)
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(str(k.idx))
        elif isinstance(k, jax.tree_util.DictKey):
            parts.append(str(k.key))
        else:
            parts.append(str(k))
    return "/".join(parts) or "<root>"


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def _is_key(dtype: Any) -> bool:
    return jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _bytes(array: np.ndarray) -> np.ndarray:
    """The bytes of a C-contiguous array, as a writable flat uint8 view (any dtype)."""
    return array.reshape(-1).view(np.uint8)


def _region(index: tuple, shape: tuple) -> list[list[int]]:
    return [list(s.indices(n)[:2]) for s, n in zip(index, shape, strict=True)]


def save_sharded(directory: str | os.PathLike, state: Any) -> None:
    """Write ``state`` (a State or any pytree of arrays) as a sharded checkpoint.

    Every process calls it with its part of the same global arrays; each writes
    only the shards it owns, and the call returns on every process once the
    checkpoint is committed. ``directory`` must not exist yet.

    >>> import tempfile, jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.serialization import restore_sharded, save_sharded
    >>> tmp = tempfile.mkdtemp()
    >>> state = core.State({"w": core.Param(jnp.arange(6.0).reshape(2, 3))})
    >>> save_sharded(tmp + "/step_0", state)
    >>> restore_sharded(tmp + "/step_0", state)["w"].value.tolist()
    [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    final = Path(directory).absolute()
    tmp = final.with_name(final.name + ".partial")
    process = jax.process_index()
    if final.exists():
        raise CheckpointError(ALREADY_THERE.format(path=final))
    if process == 0:
        shutil.rmtree(tmp, ignore_errors=True)  # left by writers that died
        tmp.mkdir(parents=True)
    _barrier(f"ramie-save-start:{final}")
    leaves, _ = jax.tree_util.tree_flatten_with_path(state)
    index: dict[str, Any] = {}
    offset = 0
    with open(tmp / f"process_{process}.bin", "wb") as f:
        for path, leaf in leaves:
            name = _key(path)
            array = leaf if isinstance(leaf, jax.Array) else jnp.asarray(leaf)
            entry = {"shape": list(array.shape), "dtype": str(array.dtype), "shards": []}
            if _is_key(array.dtype):  # PRNG keys: their raw data, and which generator
                entry["key_impl"] = str(jax.random.key_impl(array))
                array = jax.random.key_data(array)
            for shard in array.addressable_shards:
                if shard.replica_id != 0:
                    continue  # another device (maybe another process) writes this one
                data = np.ascontiguousarray(np.asarray(shard.data))
                raw = _bytes(data)
                f.write(raw)
                entry["shards"].append(
                    {
                        "region": _region(shard.index, array.shape),
                        "offset": offset,
                        "nbytes": data.nbytes,
                        "crc32": zlib.crc32(raw),
                    }
                )
                offset += data.nbytes
            index[name] = entry
        f.flush()
        os.fsync(f.fileno())
    meta = {"format": FORMAT, "version": VERSION, "process": process, "leaves": index}
    _fsync_write(tmp / f"process_{process}.json", json.dumps(meta).encode())
    _barrier(f"ramie-save-written:{final}")
    if process == 0:
        count = jax.process_count()
        for p in range(count):
            if not (tmp / f"process_{p}.json").exists():
                raise CheckpointError(MISSING_PROCESS.format(process=p, tmp=tmp))
        commit = {"format": FORMAT, "version": VERSION, "processes": count}
        _fsync_write(tmp / COMMIT, json.dumps(commit).encode())
        io.fsync_dir(tmp)
        os.rename(tmp, final)
        io.fsync_dir(final.parent)
    _barrier(f"ramie-save-committed:{final}")


def _read_index(path: Path) -> dict[str, dict]:
    """Every saved leaf: shape, dtype and its shards (with the file each sits in)."""
    commit_file = path / COMMIT
    if not commit_file.exists():
        raise CheckpointError(NOT_COMMITTED.format(path=path))
    commit = json.loads(commit_file.read_bytes())
    leaves: dict[str, dict] = {}
    for p in range(int(commit["processes"])):
        meta = json.loads((path / f"process_{p}.json").read_bytes())
        for name, entry in meta["leaves"].items():
            into = leaves.setdefault(name, {**entry, "shards": []})
            for shard in entry["shards"]:
                into["shards"].append({**shard, "file": path / f"process_{p}.bin"})
    return leaves


def _read_shard(leaf: str, shard: dict, dtype: np.dtype, verify: bool) -> np.ndarray:
    shape = tuple(b - a for a, b in shard["region"])
    buf = np.empty(shape, dtype)
    with open(shard["file"], "rb") as f:
        f.seek(shard["offset"])
        got = f.readinto(_bytes(buf))
    if got != shard["nbytes"]:
        raise CheckpointCorruptError(
            TRUNCATED.format(
                leaf=leaf, index=shard["region"], file=shard["file"], want=shard["nbytes"], got=got
            )
        )
    if verify:
        found = zlib.crc32(_bytes(buf))
        if found != shard["crc32"]:
            raise CheckpointCorruptError(
                CORRUPT_SHARD.format(
                    leaf=leaf,
                    index=shard["region"],
                    file=shard["file"],
                    expected=shard["crc32"],
                    found=found,
                )
            )
    return buf


def _assemble(path: Path, leaf: str, entry: dict, shape: tuple, dtype: np.dtype, verify: bool):
    """A callback for ``make_array_from_callback``: the saved values of one region."""
    cache: dict[int, np.ndarray] = {}

    def region(index: tuple) -> np.ndarray:
        want = [s.indices(n)[:2] for s, n in zip(index, shape, strict=True)]
        out = np.empty(tuple(b - a for a, b in want), dtype)
        covered = 0
        for k, shard in enumerate(entry["shards"]):
            have = shard["region"]
            lo = [max(a, c) for (a, _), (c, _) in zip(want, have, strict=True)]
            hi = [min(b, d) for (_, b), (_, d) in zip(want, have, strict=True)]
            if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
                continue
            if k not in cache:
                cache[k] = _read_shard(leaf, shard, dtype, verify)
            src = tuple(slice(a - c, b - c) for a, b, (c, _) in zip(lo, hi, have, strict=True))
            dst = tuple(slice(a - c, b - c) for a, b, (c, _) in zip(lo, hi, want, strict=True))
            out[dst] = cache[k][src]
            covered += int(np.prod([b - a for a, b in zip(lo, hi, strict=True)]))
        if covered != out.size:
            raise CheckpointCorruptError(UNCOVERED.format(leaf=leaf, path=path, region=want))
        return out

    return region


def restore_sharded(
    directory: str | os.PathLike, target: Any, *, strict: bool = True, verify: bool = True
) -> Any:
    """Read a sharded checkpoint into the structure, shapes and shardings of ``target``.

    ``target`` is a State or pytree of arrays or of ``jax.ShapeDtypeStruct``s
    carrying shardings (``ramie.core.get_abstract_model`` gives one): each
    restored array lands on its target leaf's sharding, whatever mesh or number
    of processes saved it, and each process reads only the shards its devices
    need. ``verify`` checks every shard read against its CRC-32. With
    ``strict=False`` a target path missing from the checkpoint keeps the
    target's value instead of raising.
    """
    path = Path(directory).absolute()
    saved = _read_index(path)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(target)
    missing = [_key(p) for p, _ in leaves if _key(p) not in saved]
    if missing and strict:
        raise StateMismatchError(
            MISSING_LEAVES.format(
                path=path,
                paths=format_paths(missing),
                saved=format_paths(sorted(saved)),
            ),
            [(m, "an array", "nothing") for m in missing],
        )
    out = []
    for p, leaf in leaves:
        name = _key(p)
        if name not in saved:
            out.append(leaf)
            continue
        entry = saved[name]
        wanted = (tuple(leaf.shape), str(leaf.dtype))
        if wanted != (tuple(entry["shape"]), entry["dtype"]):
            raise StateMismatchError(
                MISMATCH.format(
                    leaf=name,
                    path=path,
                    saved=f"{entry['dtype']}{entry['shape']}",
                    wanted=f"{leaf.dtype}{list(leaf.shape)}",
                ),
                [(name, f"{leaf.dtype}{list(leaf.shape)}", f"{entry['dtype']}{entry['shape']}")],
            )
        sharding = getattr(leaf, "sharding", None)
        if sharding is None:
            sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        if "key_impl" in entry:  # PRNG keys were saved as their raw data
            data = jax.ShapeDtypeStruct(wanted[0], leaf.dtype)
            raw = jax.eval_shape(jax.random.key_data, data)
            callback = _assemble(path, name, entry, raw.shape, raw.dtype, verify)
            array = jax.make_array_from_callback(raw.shape, sharding, callback)
            out.append(jax.random.wrap_key_data(array, impl=entry["key_impl"]))
            continue
        dtype = jnp.dtype(entry["dtype"])
        callback = _assemble(path, name, entry, wanted[0], dtype, verify)
        out.append(jax.make_array_from_callback(wanted[0], sharding, callback))
    return jax.tree_util.tree_unflatten(treedef, out)


def saved_arrays(directory: str | os.PathLike) -> Mapping[str, tuple[tuple[int, ...], str]]:
    """The arrays a committed sharded checkpoint holds: ``{path: (shape, dtype)}``."""
    return {k: (tuple(v["shape"]), v["dtype"]) for k, v in _read_index(Path(directory)).items()}
