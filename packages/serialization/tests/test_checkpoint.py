"""CheckpointManager: saving, listing, keeping, restoring, atomicity leftovers, corruption."""

import json
import os
import re
import socket
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ramie import core
from ramie import serialization as ser
from ramie.serialization import _checkpoint_io as io
from ramie.serialization import _msgpack


class Model(core.Module):
    def __init__(self, rngs, width=8):
        self.dense = [core.Module(), core.Module()]
        for i, layer in enumerate(self.dense):
            layer.kernel = core.Param(jax.random.normal(rngs.params(), (width, width)) + i)
            layer.bias = core.Param(jnp.zeros(width))
        self.count = core.BatchStat(jnp.array(3, jnp.int32))
        self.rngs = rngs


def _same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_save_restore_latest_and_by_step(tmp_path):
    manager = ser.CheckpointManager(tmp_path / "ckpt")
    states = {}
    for step in (0, 5, 10):
        model = Model(core.Rngs(step))
        states[step] = core.state(model)
        manager.save(step, states[step], metadata={"step": step, "loss": 0.5})
    assert manager.all_steps() == [0, 5, 10] and manager.latest_step() == 10
    abstract = jax.eval_shape(lambda: core.state(Model(core.Rngs(0))))
    _same(manager.restore(target=abstract), states[10])
    _same(manager.restore(5, target=abstract), states[5])
    assert manager.metadata(5) == {"step": 5, "loss": 0.5}
    restored = manager.restore(0, target=states[10])
    assert isinstance(restored, core.State) and type(restored["count"]) is core.BatchStat


def test_state_file_is_exactly_to_bytes(tmp_path):
    state = core.state(Model(core.Rngs(1)))
    manager = ser.CheckpointManager(tmp_path)
    manager.save(1, state)
    assert (tmp_path / "step_1" / "state.msgpack").read_bytes() == ser.to_bytes(state)
    assert sorted(os.listdir(tmp_path / "step_1")) == [
        "COMMIT", "index.msgpack", "metadata.json", "state.msgpack",
    ]  # fmt: skip
    marker = (tmp_path / "step_1" / "COMMIT").read_bytes()
    body, trailer = marker.rsplit(b"\n", 2)[0], marker.rsplit(b"\n", 2)[1]
    assert trailer == b"crc32 %08x" % zlib.crc32(body)  # the marker checks itself
    commit = json.loads(body)
    assert commit["version"] == 2 and commit["step"] == 1
    for name, info in commit["files"].items():
        data = (tmp_path / "step_1" / name).read_bytes()
        assert info == {"size": len(data), "crc32": zlib.crc32(data)}


def test_restore_without_target_gives_the_pure_dict(tmp_path):
    tree = {"a": np.arange(3.0), "b": {"s": "text", "c": 1 + 1j, "n": None, "x": np.int8(4)}}
    manager = ser.CheckpointManager(tmp_path)
    manager.save(0, tree)
    out = manager.restore()
    assert out["a"].tolist() == [0.0, 1.0, 2.0] and out["b"]["s"] == "text"
    assert out["b"]["c"] == 1 + 1j and out["b"]["n"] is None
    assert out["b"]["x"] == np.int8(4) and out["b"]["x"].dtype == np.int8
    assert out["a"].flags.writeable


def test_chunked_arrays_in_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setattr(_msgpack, "MAX_CHUNK_SIZE", 64)
    tree = {"big": np.arange(100, dtype=np.float32).reshape(10, 10), "z": np.zeros(0)}
    manager = ser.CheckpointManager(tmp_path)
    manager.save(0, tree)
    out = manager.restore(target=tree)
    np.testing.assert_array_equal(out["big"], tree["big"])
    np.testing.assert_array_equal(
        ser.msgpack_restore((tmp_path / "step_0" / "state.msgpack").read_bytes())["big"],
        tree["big"],
    )


def test_max_to_keep_keeps_the_newest(tmp_path):
    manager = ser.CheckpointManager(tmp_path, max_to_keep=2)
    for step in range(5):
        manager.save(step, {"x": np.full(2, step)})
    assert manager.all_steps() == [3, 4]
    names = sorted(os.listdir(tmp_path))
    assert names[0] == ".ramie-checkpoints.lock" and names[2:] == ["step_3", "step_4"]
    assert re.fullmatch(r"\.writer-[0-9a-f]{16}\.lock", names[1])  # this manager's lock
    record = json.loads((tmp_path / names[1]).read_text())
    assert record == {"host": socket.gethostname(), "pid": os.getpid()}


@pytest.mark.parametrize(("mode", "kept"), [("max", [1, 3, 5]), ("min", [0, 4, 5])])
def test_keep_best_keeps_the_best_and_the_latest(tmp_path, mode, kept):
    manager = ser.CheckpointManager(tmp_path, max_to_keep=2, keep_best="acc", best_mode=mode)
    for step, acc in enumerate([0.1, 0.9, 0.5, 0.8, 0.2, 0.3]):
        manager.save(step, {"x": np.zeros(1)}, metadata={"acc": acc})
    assert manager.all_steps() == kept
    with pytest.raises(ser.CheckpointError, match="keep_best='acc' needs the metric"):
        manager.save(9, {"x": np.zeros(1)}, metadata={"loss": 1.0})


@pytest.mark.parametrize("background", [False, True])
def test_keep_best_with_a_function(tmp_path, background):
    manager = ser.CheckpointManager(
        tmp_path, max_to_keep=1, keep_best=lambda m: -m["loss"], background=background
    )
    for step, loss in enumerate([3.0, 1.0, 2.0, 4.0]):
        manager.save(step, {"x": np.zeros(1)}, metadata={"loss": loss})
    manager.wait()
    assert manager.all_steps() == [1, 3]


def test_save_errors(tmp_path):
    manager = ser.CheckpointManager(tmp_path)
    manager.save(1, {"x": np.zeros(1)})
    with pytest.raises(ser.CheckpointError, match="A checkpoint for step 1 already exists"):
        manager.save(1, {"x": np.zeros(1)})
    with pytest.raises(ser.CheckpointError, match="non-negative ints; got -1"):
        manager.save(-1, {"x": np.zeros(1)})
    with pytest.raises(ser.CheckpointError, match="must be JSON-serializable"):
        manager.save(2, {"x": np.zeros(1)}, metadata={"a": object()})
    with pytest.raises(
        ser.CheckpointError,
        match=r"No committed checkpoint in .* for step 7\. Committed steps: \[1\]",
    ):
        manager.restore(7)
    with pytest.raises(ser.CheckpointError, match="No committed checkpoint"):
        ser.CheckpointManager(tmp_path / "empty").restore()
    assert manager.all_steps() == [1]


def test_uncommitted_directories_are_listed_and_never_deleted_by_readers(tmp_path):
    manager = ser.CheckpointManager(tmp_path)
    manager.save(1, {"x": np.ones(1)})
    manager.save(2, {"x": np.ones(1)})
    # a step without a marker (being copied in), one whose marker is garbage, one whose
    # file was truncated, and leftovers of an interrupted save and an interrupted deletion
    (tmp_path / "step_9").mkdir()
    (tmp_path / "step_9" / "state.msgpack").write_bytes(b"\x80")
    (tmp_path / "step_8").mkdir()
    (tmp_path / "step_8" / "COMMIT").write_text("{not json")
    state_file = tmp_path / "step_2" / "state.msgpack"
    state_file.write_bytes(state_file.read_bytes()[:-3])
    (tmp_path / ".tmp-step_3-abc").mkdir()
    (tmp_path / ".trash-step_0-abc").mkdir()
    (tmp_path / "notes.txt").write_text("kept")
    before = sorted(os.listdir(tmp_path))
    assert manager.all_steps() == [1, 2, 8] and manager.latest_step() == 8
    reader = ser.CheckpointManager(tmp_path)
    assert [(s.step, s.status) for s in reader.check()] == [
        (1, "good"), (2, "corrupt"), (8, "corrupt"), (9, "incomplete"),
    ]  # fmt: skip
    statuses = {s.step: s.detail for s in reader.check()}
    assert "step_2/state.msgpack is corrupt: it holds" in statuses[2]
    assert "step_8/COMMIT is corrupt: it is not valid JSON" in statuses[8]
    assert statuses[9].endswith("step_9 has no COMMIT")
    with pytest.raises(ser.CheckpointCorruptError, match="step_8/COMMIT is corrupt"):
        reader.restore()
    with pytest.raises(ser.CheckpointCorruptError, match="step_2/state.msgpack is corrupt"):
        reader.restore(2)
    with pytest.raises(ser.CheckpointError, match="No committed checkpoint .* for step 9"):
        reader.restore(9)
    assert reader.restore(1)["x"].tolist() == [1.0]
    assert sorted(os.listdir(tmp_path)) == before  # readers touched nothing


def _crc_backends():
    backends = [pytest.param(zlib.crc32, id="zlib")]
    try:
        from isal.isal_zlib import crc32 as isal_crc32
    except ImportError:  # the `fast` extra is optional; the nox session installs it
        backends.append(pytest.param(None, id="isal", marks=pytest.mark.skip("isal missing")))
    else:
        backends.append(pytest.param(isal_crc32, id="isal"))
    return backends


@pytest.mark.parametrize("crc32", _crc_backends())
def test_both_crc_backends_write_the_same_checksums_and_catch_corruption(
    tmp_path, monkeypatch, crc32
):
    data = np.random.default_rng(0).bytes(3 << 20)
    assert crc32(data) == zlib.crc32(data)
    assert crc32(data[7:], 12345) == zlib.crc32(data[7:], 12345)
    monkeypatch.setattr(io, "crc32", crc32)
    manager = ser.CheckpointManager(tmp_path)
    manager.save(1, {"x": np.arange(50_000.0)})
    np.testing.assert_array_equal(manager.restore(1)["x"], np.arange(50_000.0))
    commit = io.parse_commit((tmp_path / "step_1" / "COMMIT").read_bytes(), 1)
    state = (tmp_path / "step_1" / "state.msgpack").read_bytes()
    assert commit["files"]["state.msgpack"]["crc32"] == zlib.crc32(state)  # zlib's CRC
    path = tmp_path / "step_1" / "state.msgpack"
    path.write_bytes(state[:-9] + bytes([state[-9] ^ 1]) + state[-8:])
    with pytest.raises(ser.CheckpointCorruptError, match="state.msgpack is corrupt"):
        manager.restore(1)


def test_corrupt_bytes_are_detected_by_the_checksum(tmp_path):
    manager = ser.CheckpointManager(tmp_path)
    manager.save(4, {"x": np.arange(1000.0)})
    path = tmp_path / "step_4" / "state.msgpack"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ser.CheckpointCorruptError) as info:
        manager.restore(4)
    assert "state.msgpack is corrupt: its CRC-32 does not match the COMMIT record" in str(
        info.value
    )
    assert "nothing was deleted. manager.check() lists every step" in str(info.value)
    assert "manager.restore(step=...)" in str(info.value)
    assert manager.restore(4, verify=False)["x"].shape == (1000,)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255))
def test_any_flipped_byte_in_any_piece_is_detected(tmp_path_factory, monkeypatch, position, flip):
    # Tiny pieces and chunks: the CRC runs over many reads (array pieces and the
    # msgpack bytes between arrays alike), so every piece boundary is exercised.
    monkeypatch.setattr(io, "PIECE", 48)
    monkeypatch.setattr(_msgpack, "MAX_CHUNK_SIZE", 100)
    tree = {"a": np.arange(60, dtype=np.float32), "b": {"c": np.arange(7.0), "s": "x"}}
    tmp_path = tmp_path_factory.mktemp("flip")
    manager = ser.CheckpointManager(tmp_path)
    manager.save(0, tree)
    path = tmp_path / "step_0" / "state.msgpack"
    data = bytearray(path.read_bytes())
    np.testing.assert_array_equal(manager.restore(0)["a"], tree["a"])
    data[int(position * len(data))] ^= flip
    path.write_bytes(bytes(data))
    with pytest.raises(ser.CheckpointCorruptError, match="state.msgpack is corrupt"):
        manager.restore(0)


def test_mismatch_is_reported_before_reading(tmp_path, monkeypatch):
    manager = ser.CheckpointManager(tmp_path)
    manager.save(0, {"w": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float32)})

    def must_not_read(*args):
        raise AssertionError("arrays were read before the target was checked")

    monkeypatch.setattr(io, "read_leaves", must_not_read)
    target = {
        "w": jax.ShapeDtypeStruct((3, 2), jnp.float32),
        "c": jax.ShapeDtypeStruct((), jnp.int32),
    }
    with pytest.raises(ser.StateMismatchError) as info:
        manager.restore(0, target=target)
    message = str(info.value)
    assert message.startswith("restore(step=0): the data does not fit the target at 3 path(s)")
    assert "w: target has float32[3,2]; data has float32[2,3]" in message
    assert "c: target has int32[]; data has nothing" in message
    assert "b: target has nothing (the key is missing); data has float32[3]" in message


def test_strict_false_restores_matching_paths(tmp_path):
    manager = ser.CheckpointManager(tmp_path)
    manager.save(0, {"w": np.ones(2, np.float32), "extra": np.ones(1)})
    target = {"w": jax.ShapeDtypeStruct((2,), jnp.float32), "new": np.zeros(3)}
    with pytest.warns(ser.RestoreMismatchWarning, match="2 path"):
        out = manager.restore(target=target, strict=False)
    assert out["w"].tolist() == [1.0, 1.0] and out["new"].tolist() == [0.0] * 3


def test_background_save_snapshots_before_returning(tmp_path):
    manager = ser.CheckpointManager(tmp_path, background=True, max_to_keep=2)
    host = np.arange(1 << 16, dtype=np.float32)
    device = jnp.arange(8.0)
    step_fn = jax.jit(lambda x: x * 0 - 1, donate_argnums=0)
    manager.save(0, {"host": host, "device": device})
    host[:] = -1  # the caller may change its arrays at once
    device = step_fn(device)  # or donate them
    manager.wait()
    out = manager.restore(0)
    assert out["host"][:4].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert out["device"].tolist() == list(range(8))
    for step in (1, 2, 3):
        manager.save(step, {"host": host, "device": device})
    manager.wait()
    assert manager.all_steps() == [2, 3]


def test_background_error_is_raised_by_wait_and_next_save(tmp_path, monkeypatch):
    manager = ser.CheckpointManager(tmp_path, background=True)

    def fail(path, parts):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io, "write_parts", fail)
    manager.save(0, {"x": np.zeros(1)})
    with pytest.raises(ser.CheckpointError) as info:
        manager.wait()
    assert str(info.value).startswith(
        "The background save of step 0 failed: Cannot save checkpoint step 0: writing "
        f"{tmp_path}/.tmp-step_0-"
    )
    assert "state.msgpack failed (OSError: [Errno 28] No space left on device)" in str(info.value)
    assert isinstance(info.value.__cause__.__cause__, OSError)
    manager.wait()  # reported once
    manager.save(1, {"x": np.zeros(1)})
    with pytest.raises(ser.CheckpointError, match="step 1 failed"):
        manager.save(2, {"x": np.zeros(1)})
    monkeypatch.undo()
    manager.save(3, {"x": np.zeros(1)})
    manager.wait()
    assert manager.all_steps() == [3]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def _hostile_checkpoint(tmp_path: Path, index: bytes) -> ser.CheckpointManager:
    step_dir = tmp_path / "step_0"
    (step_dir / "index.msgpack").write_bytes(index)
    commit = io.parse_commit((step_dir / "COMMIT").read_bytes(), 0)
    commit["files"]["index.msgpack"] = {"size": len(index), "crc32": zlib.crc32(index)}
    (step_dir / "COMMIT").write_bytes(io.encode_commit(0, commit["files"]))
    return ser.CheckpointManager(tmp_path)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_hostile_index_files_are_refused(tmp_path_factory, data):
    tmp_path = tmp_path_factory.mktemp("hostile")
    ser.CheckpointManager(tmp_path).save(
        0, {"a": np.arange(6.0).reshape(2, 3), "b": [np.int8(1), "s"], "c": np.ones(4, np.float32)}
    )
    index = bytearray((tmp_path / "step_0" / "index.msgpack").read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(index) - 1))
        index[i] = data.draw(st.integers(0, 255))
    manager = _hostile_checkpoint(tmp_path, bytes(index))
    try:
        manager.restore(0)
    except ser.CheckpointCorruptError as e:
        assert "index.msgpack is corrupt" in str(e) or "state.msgpack is corrupt" in str(e)


def test_index_ranges_outside_the_file_are_refused(tmp_path):
    import msgpack

    ser.CheckpointManager(tmp_path).save(0, {"a": np.zeros(2)})
    index = msgpack.packb(
        {"version": 1, "tree": {"a": msgpack.ExtType(64, (0).to_bytes(4, "big"))},
         "leaves": [[1, [10**9], "float64", [[0, 8 * 10**9]]]]}
    )  # fmt: skip
    with pytest.raises(ser.CheckpointCorruptError, match=r"leaf 0 has the range \[0, 8000000000\]"):
        _hostile_checkpoint(tmp_path, index).restore(0)
