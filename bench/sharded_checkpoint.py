"""Sharded checkpoint throughput: save_sharded / restore_sharded on 8 CPU devices
against 1 device, and against CheckpointManager on 1 device, in the same run.

A State of 8 float32 arrays (``--mb`` MB in all) is sharded by rows over a
one-axis mesh of N virtual CPU devices (one subprocess per N: the device count
is fixed when jax starts), saved (fsync included) and restored onto the same
sharding; every number is MB/s (1 MB = 10**6 bytes of array data), the median of
``--repeats`` runs. Restores read from the page cache (the file was just
written): they measure the software, not the disk.

Run: python bench/sharded_checkpoint.py [--mb 256] [--repeats 5] [--dir /tmp]
(needs ramie-core and ramie-serialization installed)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

CHILD = """
import json, os, shutil, statistics, sys, tempfile, time
import jax
jax.config.update("jax_num_cpu_devices", {devices})
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
from ramie import core, serialization as ser

mb, repeats, where = {mb}, {repeats}, {where!r}
mesh = jax.make_mesh(({devices},), ("data",))
rows = NamedSharding(mesh, P("data"))
n = int(mb * 1e6 / 4 / 8 / 1024) // 64 * 64  # rows: a multiple of the device count
state = core.State({{
    f"w{{i}}": core.Param(jax.device_put(jnp.full((n, 1024), i, jnp.float32), rows))
    for i in range(8)
}})
jax.block_until_ready(state)
nbytes = sum(v.value.nbytes for v in state.values())
def spec(x):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
abstract = jax.tree.map(spec, state)
out = {{"save_sharded": [], "restore_sharded": [], "manager_save": [], "manager_restore": []}}
for r in range(repeats):
    root = tempfile.mkdtemp(dir=where)
    os.sync()
    t = time.perf_counter(); ser.save_sharded(root + "/ckpt", state)
    out["save_sharded"].append(nbytes / 1e6 / (time.perf_counter() - t))
    t = time.perf_counter()
    got = jax.block_until_ready(ser.restore_sharded(root + "/ckpt", abstract))
    out["restore_sharded"].append(nbytes / 1e6 / (time.perf_counter() - t))
    del got
    if {devices} == 1:
        manager = ser.CheckpointManager(root + "/manager")
        os.sync()
        t = time.perf_counter(); manager.save(0, state)
        out["manager_save"].append(nbytes / 1e6 / (time.perf_counter() - t))
        t = time.perf_counter(); got = jax.block_until_ready(manager.restore(target=abstract))
        out["manager_restore"].append(nbytes / 1e6 / (time.perf_counter() - t))
        del got
    shutil.rmtree(root)
print("RESULT", json.dumps({{k: statistics.median(v) for k, v in out.items() if v}}))
"""


def run(devices: int, mb: float, repeats: int, where: str) -> dict[str, float]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    code = CHILD.format(devices=devices, mb=mb, repeats=repeats, where=where)
    result = subprocess.run(
        ["timeout", "-k", "5", "900", sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    line = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line.split(" ", 1)[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=float, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dir", default=tempfile.gettempdir())
    args = p.parse_args()
    where = tempfile.mkdtemp(dir=args.dir)
    try:
        one, eight = run(1, args.mb, args.repeats, where), run(8, args.mb, args.repeats, where)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    print(f"{args.mb:g} MB in 8 float32 arrays, median of {args.repeats}; MB/s")
    print(f"{'':34}{'save':>10}{'restore':>10}")
    rows = [
        ("CheckpointManager, 1 device", one["manager_save"], one["manager_restore"]),
        ("save/restore_sharded, 1 device", one["save_sharded"], one["restore_sharded"]),
        ("save/restore_sharded, 8 devices", eight["save_sharded"], eight["restore_sharded"]),
    ]
    for name, save, restore in rows:
        print(f"{name:34}{save:10.0f}{restore:10.0f}")
    print(
        f"8 devices / 1 device: save {eight['save_sharded'] / one['save_sharded']:.2f}x, "
        f"restore {eight['restore_sharded'] / one['restore_sharded']:.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
