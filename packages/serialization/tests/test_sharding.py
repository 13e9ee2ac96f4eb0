"""Restoring onto the target's shardings, with 8 CPU devices (in a subprocess: XLA_FLAGS
must be set before jax starts)."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import tempfile
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from ramie import core, serialization as ser

    assert jax.device_count() == 8, jax.devices()
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
    rows = NamedSharding(mesh, P("data", None))
    cols = NamedSharding(mesh, P(None, "model"))
    full = NamedSharding(mesh, P())

    class Model(core.Module):
        def __init__(self, rngs):
            self.w = core.Param(jax.random.normal(rngs.params(), (8, 6)))
            self.v = core.Param(jnp.arange(12.0).reshape(2, 6))
            self.b = core.Param(jnp.ones(3))

    model = Model(core.Rngs(0))
    # the saved arrays are themselves sharded (gathered to host on save)
    model.w.value = jax.device_put(model.w.value, cols)
    state = core.state(model)
    abstract = jax.eval_shape(lambda: core.state(Model(core.Rngs(1))))
    shardings = {"w": rows, "v": cols, "b": full}
    for name, sharding in shardings.items():
        leaf = abstract[name].value
        abstract[name].value = jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding)

    def check(restored):
        for name, sharding in shardings.items():
            value = restored[name].value
            assert value.sharding == sharding, (name, value.sharding)
            np.testing.assert_array_equal(np.asarray(value), np.asarray(state[name].value))
        assert len(restored["w"].value.addressable_shards) == 8

    check(ser.from_bytes(abstract, ser.to_bytes(state)))
    manager = ser.CheckpointManager(tempfile.mkdtemp())
    manager.save(0, state)
    check(manager.restore(target=abstract))

    # a real target's arrays carry their shardings too
    real = core.state(Model(core.Rngs(2)))
    real["w"].value = jax.device_put(real["w"].value, rows)
    out = manager.restore(target=real)
    assert out["w"].value.sharding == rows
    print("SHARDING-OK")
    """
)


def test_restore_onto_target_shardings():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SHARDING-OK" in result.stdout
