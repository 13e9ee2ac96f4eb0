"""Checkpoint save/restore throughput against plain file I/O of the same bytes.

A ~1 GB state (a State of float32 jax arrays, 16 x 64 MiB plus a few small
ones) is saved and restored; every number is MB/s (1 MB = 10**6 bytes of array
data). Baselines measured in the same run on the same disk:

- raw write: the arrays' bytes written to one file with plain ``write`` + ``fsync``;
- raw read: that file read back with ``readinto`` into freshly allocated arrays.

Before every timing all dirty pages are flushed (``os.sync``). Each save is timed
in a pair with the raw write, alternating which goes first, and compared with the
raw writes of its own pairs (a write right after another one is slower here). Every
read is
timed twice: *cold*, after the file's pages are dropped from the page cache
(``posix_fadvise(DONTNEED)``), so it comes from the disk (or whatever the VM
host caches of it: on a shared VM this is the noisy one), and *warm*, right after
a first read filled the page cache, which measures the software's own cost.
Compared with ``flax.serialization`` (``to_bytes`` + write + fsync; read +
``from_bytes``) and Orbax's ``StandardCheckpointer`` when they are installed.

Run: python bench/checkpoint.py [--gb 1.0] [--repeats 8] [--dir /tmp]
(needs ramie-core and ramie-serialization installed; an even --repeats balances
the pairs)
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ramie import core
from ramie import serialization as ser


def make_state(gb: float) -> core.State:
    n_big = 16
    per = int(gb * 1e9 / 4 / n_big)
    key = jax.random.key(0)
    big = {}
    for i in range(n_big):
        big[f"w{i:02d}"] = core.Param(jax.random.normal(jax.random.fold_in(key, i), (per,)))
    small = {f"b{i}": core.Param(jnp.full((256,), float(i))) for i in range(8)}
    return core.State({"big": big, "small": small, "step": core.BatchStat(jnp.array(7))})


def drop_cache(path: Path) -> None:
    """Evict ``path`` (a file, or every file below a directory) from the page cache."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(fn: Callable[[], object], before: Callable[[], object] | None = None) -> float:
    os.sync()  # no writeback of earlier contenders' dirty pages during this one
    if before is not None:
        before()
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def raw_write(arrays: list[np.ndarray], path: Path) -> None:
    with open(path, "wb", buffering=0) as f:
        for a in arrays:
            view = memoryview(a.reshape(-1).view(np.uint8))
            while len(view):
                view = view[f.write(view) :]
        os.fsync(f.fileno())


def raw_read(shapes: list[tuple[tuple, np.dtype]], path: Path) -> list[np.ndarray]:
    out = []
    with open(path, "rb", buffering=0) as f:
        for shape, dtype in shapes:
            a = np.empty(shape, dtype)
            view = memoryview(a.reshape(-1).view(np.uint8))
            while len(view):
                view = view[f.readinto(view) :]
            out.append(a)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()

    state = make_state(args.gb)
    jax.block_until_ready(state)
    pure = core.to_pure_dict(state)
    leaves = [np.asarray(x) for x in jax.tree.leaves(pure)]
    nbytes = sum(a.nbytes for a in leaves)
    abstract = jax.eval_shape(lambda: state)
    root = Path(tempfile.mkdtemp(prefix="ramie-bench-ckpt-", dir=args.dir))
    times: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    flax_ser = _optional("flax.serialization")
    ocp = _optional("orbax.checkpoint")
    shapes = [(a.shape, a.dtype) for a in leaves]
    abstract_pure = core.to_pure_dict(abstract)
    checkpointer = ocp.StandardCheckpointer() if ocp is not None else None
    raw, flax_file = root / "raw.bin", root / "flax.msgpack"
    # max_to_keep=None: deleting the previous step (an unlink of 1 GB, ~0.2 s here) is done
    # between rounds, outside the timings, as the raw baseline deletes nothing either.
    manager = ser.CheckpointManager(root / "ramie")

    def flax_save() -> None:
        data = flax_ser.to_bytes(pure)
        with open(flax_file, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def orbax_save(path: Path) -> None:
        checkpointer.save(path, pure)
        checkpointer.wait_until_finished()

    try:
        # Rounds interleave every contender, writes first, then reads, so that the
        # (shared, noisy) machine's slow and fast moments spread over all of them.
        for r in range(args.repeats):
            step_dir, orbax_dir = root / "ramie" / f"step_{r}", root / f"orbax_{r}"
            writes = [
                ("raw write (write + fsync)", lambda: raw_write(leaves, raw)),
                ("ramie save", lambda: manager.save(r, state)),  # noqa: B023
            ]
            if flax_ser is not None:
                writes.append(("flax.serialization save (to_bytes + write)", flax_save))
            if checkpointer is not None:
                writes.append(("orbax save", lambda: orbax_save(orbax_dir)))  # noqa: B023
            # On this VM a 1 GB write right after another one runs 2-4x slower, whatever
            # the pause between them (the host is still flushing the first). So each
            # contender is timed in a pair with the raw write, the pair's order
            # alternating between rounds, and compared with the raw writes of its own
            # pairs: both sides get the fast first slot equally often.
            (raw_name, raw_fn), *contenders = writes
            for name, write in contenders:
                pair = [(f"{raw_name} [paired with {name}]", raw_fn), (name, write)]
                for label, fn in pair if r % 2 == 0 else pair[::-1]:
                    record(label, timed(fn))
                    if label.startswith(raw_name):
                        record(raw_name, times[label][-1])

            reads = [
                ("raw read (readinto)", lambda: raw_read(shapes, raw), raw),
                ("ramie restore -> numpy (no target)", manager.restore, step_dir),
                (
                    "ramie restore -> numpy, verify=False (no CRC)",
                    lambda: manager.restore(verify=False),
                    step_dir,
                ),
                (
                    "ramie restore -> jax arrays (abstract target)",
                    lambda: jax.block_until_ready(manager.restore(target=abstract)),
                    step_dir,
                ),
            ]
            if flax_ser is not None:
                reads.append(
                    (
                        "flax.serialization restore -> numpy",
                        lambda: flax_ser.from_bytes(abstract_pure, flax_file.read_bytes()),
                        flax_file,
                    )
                )
            if checkpointer is not None:
                reads.append(
                    (
                        "orbax restore -> jax arrays",
                        lambda: jax.block_until_ready(
                            checkpointer.restore(orbax_dir, abstract_pure)  # noqa: B023
                        ),
                        orbax_dir,
                    )
                )
            for name, read, path in reads:
                record(f"{name}, cold", timed(read, lambda p=path: drop_cache(p)))
                record(f"{name}, warm", timed(read, read))  # page cache filled by a first read
            shutil.rmtree(step_dir)
            if checkpointer is not None:
                shutil.rmtree(orbax_dir)
    finally:
        if checkpointer is not None:
            checkpointer.close()
        shutil.rmtree(root, ignore_errors=True)

    mb = nbytes / 1e6
    print(f"state: {len(leaves)} arrays, {mb:.0f} MB; medians of {args.repeats} runs")
    print(f"{'operation':52s} {'median s':>9s} {'MB/s':>7s} {'x raw':>6s}")
    write_raw = statistics.median(times["raw write (write + fsync)"])
    paired = "raw write (write + fsync) [paired with "
    cold = statistics.median(times["raw read (readinto), cold"])
    warm = statistics.median(times["raw read (readinto), warm"])
    for name, samples in sorted(
        times.items(),
        key=lambda kv: ("save" not in kv[0] and "write" not in kv[0], kv[0].endswith("warm")),
    ):
        if name.startswith(paired):
            continue  # folded into the contender's ratio below
        median = statistics.median(samples)
        if "save" in name:  # against the raw writes of its own pairs
            base = statistics.median(times[f"{paired}{name}]"])
        elif "write" in name:
            base = write_raw
        else:
            base = warm if name.endswith("warm") else cold
        print(f"{name:52s} {median:9.3f} {mb / median:7.0f} {base / median:6.2f}")


def _optional(module: str):
    try:
        import importlib

        return importlib.import_module(module)
    except ImportError:
        return None


if __name__ == "__main__":
    main()
