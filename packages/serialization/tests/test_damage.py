"""Damaged, half-copied and odd checkpoints are reported, never skipped or deleted."""

import errno
import os
import shutil
import tracemalloc
import zlib

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from timeouts import SPECIAL_KINDS, deadline, make_special

from ramie import serialization as ser
from ramie.serialization import _checkpoint_io as io
from ramie.serialization import _errors

FILES = ["COMMIT", "index.msgpack", "metadata.json", "state.msgpack"]


def _three_steps(directory):
    manager = ser.CheckpointManager(directory)
    for step in (1, 2, 3):
        manager.save(step, {"w": np.arange(50.0) + step, "s": "x"}, metadata={"loss": step})
    return manager


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.sampled_from(FILES), position=st.floats(0, 1, exclude_max=True), flip=st.data())
def test_a_flipped_byte_in_any_file_is_reported_never_an_older_step(
    tmp_path_factory, name, position, flip
):
    directory = tmp_path_factory.mktemp("flip")
    manager = _three_steps(directory)
    path = directory / "step_3" / name
    data = bytearray(path.read_bytes())
    data[int(position * len(data))] ^= flip.draw(st.integers(1, 255))
    path.write_bytes(bytes(data))
    listing = sorted(os.listdir(directory / "step_3"))
    assert manager.latest_step() == 3 and manager.all_steps() == [1, 2, 3]
    with pytest.raises(ser.CheckpointCorruptError) as info:
        manager.restore()
    message = str(info.value)
    assert message.startswith(f"Checkpoint file {path} is corrupt: ")
    assert "The checkpoint at step 3 cannot be restored; nothing was deleted." in message
    assert "restore the newest good one with manager.restore(step=...)" in message
    report = ser.CheckpointManager(directory).check()
    assert [(s.step, s.status) for s in report] == [(1, "good"), (2, "good"), (3, "corrupt")]
    assert report[2].detail.startswith(f"Checkpoint file {directory / 'step_3'}/")
    assert manager.restore(2)["w"][0] == 2.0
    assert sorted(os.listdir(directory / "step_3")) == listing  # nothing removed


def test_the_corrupt_message_names_step_file_and_check(tmp_path):
    manager = _three_steps(tmp_path)
    commit = tmp_path / "step_3" / "COMMIT"
    commit.write_bytes(commit.read_bytes().replace(b'"step": 3', b'"step": 4'))
    with pytest.raises(ser.CheckpointCorruptError) as info:
        manager.restore()
    assert str(info.value) == _errors.CORRUPT_FILE.format(
        file=commit,
        detail="its own CRC-32 (last line) does not match its contents",
        step=3,
    )
    assert info.value.__cause__ is None


def test_a_half_copied_step_is_incomplete_and_survives_readers(tmp_path):
    manager = _three_steps(tmp_path / "src")
    copy = tmp_path / "dst"
    copy.mkdir()
    shutil.copytree(tmp_path / "src" / "step_1", copy / "step_1")
    (copy / "step_3").mkdir()
    for name in ("state.msgpack", "index.msgpack"):  # copied so far; COMMIT comes last
        shutil.copy(tmp_path / "src" / "step_3" / name, copy / "step_3" / name)
    for _ in range(3):
        reader = ser.CheckpointManager(copy, max_to_keep=1)
        assert reader.all_steps() == [1] and reader.latest_step() == 1
        assert [(s.step, s.status) for s in reader.check()] == [(1, "good"), (3, "incomplete")]
        assert reader.restore()["w"][0] == 1.0
    assert sorted(os.listdir(copy / "step_3")) == ["index.msgpack", "state.msgpack"]
    for name in ("metadata.json", "COMMIT"):
        shutil.copy(tmp_path / "src" / "step_3" / name, copy / "step_3" / name)
    assert reader.all_steps() == [1, 3] and reader.restore()["w"][0] == 3.0
    assert manager.all_steps() == [1, 2, 3]


def test_a_writer_never_deletes_an_incomplete_or_corrupt_step_outside_retention(tmp_path):
    manager = _three_steps(tmp_path)
    (tmp_path / "step_9").mkdir()
    (tmp_path / "step_3" / "state.msgpack").write_bytes(b"garbage")
    manager.save(4, {"w": np.zeros(1)})
    assert {"step_3", "step_9"} <= set(os.listdir(tmp_path))
    with pytest.raises(ser.CheckpointError, match="A checkpoint for step 9 already exists"):
        manager.save(9, {"w": np.zeros(1)})
    pruner = ser.CheckpointManager(tmp_path, max_to_keep=2)
    pruner.save(5, {"w": np.zeros(1)})  # retention removes the oldest committed steps only
    assert pruner.all_steps() == [4, 5] and (tmp_path / "step_9").is_dir()


def test_keep_best_ranks_a_step_with_unreadable_metadata_last(tmp_path):
    manager = ser.CheckpointManager(tmp_path, max_to_keep=1, keep_best="acc")
    for step, acc in enumerate([0.9, 0.1, 0.2]):
        manager.save(step, {"x": np.zeros(1)}, metadata={"acc": acc})
        if step == 0:
            # same size, CRC no longer matches: were it believed, 9.9 would rank best
            (tmp_path / "step_0" / "metadata.json").write_bytes(b'{"acc": 9.9}')
    assert manager.all_steps() == [2]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("kind", list(SPECIAL_KINDS))
def test_special_files_are_refused_without_blocking(tmp_path, name, kind):
    manager = _three_steps(tmp_path)
    path = tmp_path / "step_3" / name
    path.unlink()
    expected = make_special(path, kind)
    with deadline(10):
        with pytest.raises(ser.CheckpointCorruptError) as info:
            manager.restore()
        assert str(info.value).startswith(
            f"Checkpoint file {path} is corrupt: it is a {expected}, not a regular file. "
            "The checkpoint at step 3 cannot be restored"
        )
        assert [s.status for s in manager.check()] == ["good", "good", "corrupt"]


def test_a_symlink_to_a_regular_file_is_followed(tmp_path):
    manager = _three_steps(tmp_path)
    state = tmp_path / "step_3" / "state.msgpack"
    os.rename(state, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", state)
    assert manager.restore()["w"][0] == 3.0


def test_a_sparse_state_file_is_refused_at_once(tmp_path):
    manager = _three_steps(tmp_path)
    with open(tmp_path / "step_3" / "state.msgpack", "r+b") as f:
        f.truncate(1 << 40)  # 1 TiB of holes
    with deadline(10):
        with pytest.raises(ser.CheckpointCorruptError, match=r"it holds 1099511627776 bytes"):
            manager.restore()


def test_many_empty_leaves_cost_memory_in_proportion_to_the_file(tmp_path):
    n = 100_000
    manager = ser.CheckpointManager(tmp_path)
    manager.save(0, {"x": np.zeros(1)})
    step_dir = tmp_path / "step_0"
    refs = [msgpack.ExtType(64, i.to_bytes(4, "big")) for i in range(n)]
    index = msgpack.packb(
        {"version": 1, "tree": refs, "leaves": [[1, [0, 7], "float32", [[0, 0]]]] * n},
        use_bin_type=True,
    )
    (step_dir / "index.msgpack").write_bytes(index)
    commit = io.parse_commit((step_dir / "COMMIT").read_bytes(), 0)
    commit["files"]["index.msgpack"] = {"size": len(index), "crc32": zlib.crc32(index)}
    (step_dir / "COMMIT").write_bytes(io.encode_commit(0, commit["files"]))
    tracemalloc.start()
    try:
        out = manager.restore()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(out) == n and out[0].shape == (0, 7) and out[-1].dtype == np.float32
    assert peak < n * 1024  # was > 4 KiB a leaf (a page-aligned buffer each)


def test_foreground_io_errors_name_the_path_and_leave_no_temp_dir(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ser.CheckpointError) as info:
        ser.CheckpointManager(tmp_path / "file" / "ckpt").save(0, {"x": np.zeros(1)})
    assert str(info.value).startswith(
        f"Cannot save checkpoint step 0: writing {tmp_path / 'file' / 'ckpt'} failed "
        "(NotADirectoryError: "
    )
    assert isinstance(info.value.__cause__, NotADirectoryError)

    manager = ser.CheckpointManager(tmp_path / "ckpt")
    manager.save(0, {"x": np.zeros(1)})
    real = io.write_small

    def disk_full(path, data):
        if path.name == "metadata.json":
            real(path, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(io, "write_small", disk_full)
    with pytest.raises(ser.CheckpointError) as info:
        manager.save(1, {"x": np.zeros(1)})
    message = str(info.value)
    assert message.startswith("Cannot save checkpoint step 1: writing ")
    assert "/metadata.json failed (OSError: [Errno 28] No space left on device" in message
    assert "The temporary directory was removed and the committed checkpoints are untouched" in (
        message
    )
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOSPC
    assert not [p for p in os.listdir(tmp_path / "ckpt") if p.startswith(".tmp")]
    assert manager.all_steps() == [0]


def test_a_read_error_names_the_file_with_the_oserror_as_cause(tmp_path, monkeypatch):
    manager = _three_steps(tmp_path)

    def broken(path, limit):
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(io, "read_file", broken)
    with pytest.raises(ser.CheckpointError) as info:
        manager.restore()
    assert str(info.value).startswith(
        f"Cannot read checkpoint file {tmp_path / 'step_3' / 'COMMIT'} (step 3): [Errno 5]"
    )
    assert isinstance(info.value.__cause__, OSError)
    assert not isinstance(info.value, ser.CheckpointCorruptError)


def test_readers_create_nothing(tmp_path):
    missing = tmp_path / "not-yet"
    reader = ser.CheckpointManager(missing, max_to_keep=2, background=True)
    assert reader.all_steps() == [] and reader.latest_step() is None and reader.check() == []
    with pytest.raises(ser.CheckpointError, match="No committed checkpoint"):
        reader.restore()
    assert not missing.exists()


def test_a_failure_after_the_commit_says_the_step_is_committed(tmp_path, monkeypatch):
    manager = ser.CheckpointManager(tmp_path, max_to_keep=1)
    manager.save(0, {"x": np.zeros(1)})

    real = os.rename

    def rename(src, dst):
        if ".trash-" in str(dst):
            raise PermissionError(errno.EACCES, "Permission denied", str(src))
        return real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(ser.CheckpointError) as info:
        manager.save(1, {"x": np.ones(1)})
    detail = f"PermissionError: [Errno 13] Permission denied: '{tmp_path / 'step_0'}'"
    assert str(info.value) == _errors.AFTER_COMMIT_FAILED.format(
        step=1, path=tmp_path, detail=detail
    )
    assert isinstance(info.value.__cause__, PermissionError)
    monkeypatch.undo()
    assert manager.all_steps() == [0, 1] and manager.restore(1)["x"].tolist() == [1.0]
