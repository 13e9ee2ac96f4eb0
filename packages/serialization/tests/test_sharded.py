"""Sharded checkpoints: each process writes its shards; restore onto 8, 4 and 1 devices;
saved by 2 processes (jax.distributed on 127.0.0.1, gloo), restored by 1.

The device counts are fixed when jax starts, so those cases run ``sharded_data.py`` in
subprocesses, each under ``timeout -k`` so that even a hung distributed run ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sharded_data import values

from ramie import core
from ramie import serialization as ser
from ramie.serialization import _sharded

HERE = Path(__file__).parent
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(HERE)}
ENV.pop("XLA_FLAGS", None)


def script(*args: str, timeout: int = 240) -> subprocess.Popen:
    command = ["timeout", "-k", "5", str(timeout), sys.executable, str(HERE / "sharded_data.py")]
    return subprocess.Popen(
        [*command, *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, out[-2000:] + err[-4000:]
    return out


def restored_shapes(out: str) -> dict:
    line = [x for x in out.splitlines() if x.startswith("RESTORED ")][-1]
    return json.loads(line.split(" ", 1)[1])


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """One checkpoint saved on 8 devices (one process), one by 2 processes x 4 devices."""
    root = tmp_path_factory.mktemp("sharded")
    one, two = root / "eight_devices", root / "two_processes"
    finish(script("save", str(one), "--devices", "8"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    flags = ["--devices", "4", "--processes", "2", "--port", port]
    procs = [script("save", str(two), *flags, "--process", str(i)) for i in (0, 1)]
    try:
        outs = [finish(p) for p in procs]
    finally:
        for p in procs:  # never leave one behind: `timeout` leads its own process group
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert [[x for x in o.splitlines() if x.startswith("SAVED")] for o in outs] == [
        ["SAVED 0"],
        ["SAVED 1"],
    ]
    return {"one": one, "two": two}


def test_each_process_wrote_only_the_shards_it_owns(saved):
    two = saved["two"]
    assert sorted(p.name for p in two.iterdir()) == [
        "COMMIT", "process_0.bin", "process_0.json", "process_1.bin", "process_1.json",
    ]  # fmt: skip
    total = sum(v.nbytes for v in values().values())
    sizes = [(two / f"process_{i}.bin").stat().st_size for i in (0, 1)]
    # Every shard is written once, by the process holding its first replica: w is split
    # by rows between the processes (process 1 holds mesh rows 2-3); b (split by columns
    # only), v and s are replicated over the rows, so process 0 writes them.
    assert sum(sizes) == total
    assert sizes[1] == values()["w"].nbytes // 2
    index = json.loads((two / "process_1.json").read_text())["leaves"]
    assert [s["region"] for s in index["model/w"]["shards"]] == [
        [[8, 12], [0, 4]], [[8, 12], [4, 8]], [[12, 16], [0, 4]], [[12, 16], [4, 8]],
    ]  # fmt: skip
    assert not list(two.parent.glob("*.partial"))


@pytest.mark.parametrize("devices", [8, 4, 1])
def test_restore_onto_another_mesh_gives_the_same_values(saved, devices):
    out = finish(script("restore", str(saved["one"]), str(saved["two"]), "--devices", str(devices)))
    shapes = restored_shapes(out)
    rows = {8: 4, 4: 2, 1: 1}[devices]
    model = {8: 2, 4: 2, 1: 1}[devices]
    assert shapes["w"] == [[16 // model, 8]]
    assert shapes["b"] == [[8 // rows, 6]] and shapes["v"] == [[8 // rows]]
    assert shapes["s"] == [[]]


# -- one device, in this process --------------------------------------------------
def _state():
    return core.State(
        {
            "w": core.Param(jnp.arange(12.0).reshape(3, 4), sharding_names=("a", None)),
            "key": core.RngKey(jax.random.key(7)),
            "layers": [{"n": core.Variable(jnp.array(3, jnp.int32))}],
        }
    )


def test_round_trip_keeps_kinds_metadata_and_keys(tmp_path):
    state = _state()
    ser.save_sharded(tmp_path / "ckpt", state)
    restored = ser.restore_sharded(tmp_path / "ckpt", jax.eval_shape(lambda: _state()))
    np.testing.assert_array_equal(restored["w"].value, state["w"].value)
    assert restored["w"].sharding_names == ("a", None)
    assert jax.random.key_data(restored["key"].value).tolist() == [0, 7]
    assert int(restored["layers"][0]["n"].value) == 3
    assert ser.saved_arrays(tmp_path / "ckpt") == {
        "w": ((3, 4), "float32"), "key": ((), "key<fry>"), "layers/0/n": ((), "int32"),
    }  # fmt: skip


def test_an_existing_directory_is_never_overwritten(tmp_path):
    ser.save_sharded(tmp_path / "ckpt", _state())
    with pytest.raises(ser.CheckpointError) as info:
        ser.save_sharded(tmp_path / "ckpt", _state())
    assert str(info.value) == _sharded.ALREADY_THERE.format(path=tmp_path / "ckpt")


def test_uncommitted_directory_is_refused(tmp_path):
    ser.save_sharded(tmp_path / "ckpt", _state())
    (tmp_path / "ckpt" / "COMMIT").unlink()
    with pytest.raises(ser.CheckpointError) as info:
        ser.restore_sharded(tmp_path / "ckpt", _state())
    assert str(info.value) == _sharded.NOT_COMMITTED.format(path=tmp_path / "ckpt")


def test_shape_mismatch_and_missing_paths_name_the_leaf(tmp_path):
    ser.save_sharded(tmp_path / "ckpt", _state())
    wrong = _state()
    wrong["w"] = core.Param(jnp.zeros((4, 3)))
    with pytest.raises(ser.StateMismatchError) as info:
        ser.restore_sharded(tmp_path / "ckpt", wrong)
    assert str(info.value) == _sharded.MISMATCH.format(
        leaf="w", saved="float32[3, 4]", path=tmp_path / "ckpt", wanted="float32[4, 3]"
    )
    extra = _state()
    extra["new"] = core.Param(jnp.ones(2))
    with pytest.raises(ser.StateMismatchError) as info:
        ser.restore_sharded(tmp_path / "ckpt", extra)
    assert info.value.differences == [("new", "an array", "nothing")]
    kept = ser.restore_sharded(tmp_path / "ckpt", extra, strict=False)
    assert kept["new"].value.tolist() == [1.0, 1.0]
    np.testing.assert_array_equal(kept["w"].value, _state()["w"].value)


def test_damage_is_reported_not_restored(tmp_path):
    ser.save_sharded(tmp_path / "ckpt", _state())
    data = tmp_path / "ckpt" / "process_0.bin"
    raw = bytearray(data.read_bytes())
    raw[5] ^= 0xFF  # inside the first leaf's bytes: the key's data (2 x uint32)
    data.write_bytes(bytes(raw))
    with pytest.raises(ser.CheckpointCorruptError) as info:
        ser.restore_sharded(tmp_path / "ckpt", _state())
    index = json.loads((tmp_path / "ckpt" / "process_0.json").read_text())["leaves"]
    assert str(info.value) == _sharded.CORRUPT_SHARD.format(
        leaf="key",
        index=[[0, 2]],
        file=data,
        expected=index["key"]["shards"][0]["crc32"],
        found=zlib.crc32(bytes(raw[:8])),
    )
    data.write_bytes(bytes(raw[:10]))
    with pytest.raises(ser.CheckpointCorruptError) as info:
        ser.restore_sharded(tmp_path / "ckpt", _state(), verify=False)
    assert "it is truncated" in str(info.value)
