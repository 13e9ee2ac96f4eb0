"""The arrays the sharded-checkpoint tests save and restore, and the scripts they run.

``python sharded_data.py save DIR`` (optionally as one of several jax.distributed
processes: ``--process I --processes N --port P``) saves them sharded over every
device; ``python sharded_data.py restore DIR...`` restores each onto this process's
devices (a different mesh) and checks every value exactly.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

# name: (global value, PartitionSpec entries when saved, when restored)
SPECS = {
    "w": (("data", "model"), ("model", None)),
    "b": ((None, "model"), ("data", None)),
    "v": ((), ("data",)),
    "s": ((), ()),
}


def values() -> dict[str, np.ndarray]:
    import ml_dtypes

    return {
        "w": np.arange(16 * 8, dtype=np.float32).reshape(16, 8) / 7,
        "b": (np.arange(24).reshape(8, 3 * 1) - 5).astype(ml_dtypes.bfloat16).repeat(2, 1),
        "v": np.arange(8, dtype=np.int32) * 3,
        "s": np.array(2.5, np.float32),
    }


def mesh(count: int):
    import jax
    from jax.sharding import AxisType

    shape = {8: (4, 2), 4: (2, 2), 2: (2, 1), 1: (1, 1)}[count]
    return jax.make_mesh(shape, ("data", "model"), axis_types=(AxisType.Auto,) * 2)


def state(which: int):
    """The values as a State of Params sharded over every device (spec ``which``)."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    from ramie import core

    m = mesh(jax.device_count())
    out = {}
    for name, value in values().items():
        sharding = NamedSharding(m, PartitionSpec(*SPECS[name][which]))
        array = jax.make_array_from_callback(value.shape, sharding, lambda i, v=value: v[i])
        out[name] = core.Param(array, note=name)
    return core.State({"model": out})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=("save", "restore"))
    p.add_argument("dirs", nargs="+")
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--process", type=int)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--port", type=int)
    args = p.parse_args()
    import jax

    jax.config.update("jax_num_cpu_devices", args.devices)
    if args.process is not None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"127.0.0.1:{args.port}", args.processes, args.process)
    from ramie import serialization as ser

    if args.command == "save":
        ser.save_sharded(args.dirs[0], state(0))
        print("SAVED", jax.process_index(), flush=True)
    else:
        target = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state(1)
        )
        report = {}
        for directory in args.dirs:
            restored = ser.restore_sharded(directory, target)
            for name, value in values().items():
                got = restored["model"][name]
                assert got.note == name  # the target's Variables, metadata included
                assert got.value.sharding == target["model"][name].value.sharding, name
                np.testing.assert_array_equal(np.asarray(got.value), value, err_msg=name)
                report[name] = sorted({s.data.shape for s in got.value.addressable_shards})
        print("RESTORED", json.dumps(report), flush=True)
    if args.process is not None:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main()
