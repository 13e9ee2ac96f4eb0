"""Several threads and processes saving into one directory while readers poll it."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from ramie import serialization as ser
from ramie.serialization import _locks


def state(step: int) -> dict:
    return {"w": np.full(64, step, np.float32), "step": step}


def _poll(directory: Path, stop: threading.Event, seen: dict) -> None:
    """An evaluator waiting for new steps: opens a manager, lists, restores the latest."""
    while not stop.is_set():
        manager = ser.CheckpointManager(directory)
        step = manager.latest_step()
        if step is None:
            continue
        try:
            out = manager.restore(step)
        except Exception as e:  # every failure is recorded, none expected
            seen["errors"].append(f"{type(e).__name__}: {e}")
            continue
        if out["step"] != step or not (out["w"] == step).all():
            seen["errors"].append(f"step {step} restored other contents")
        seen["restores"] += 1


def test_a_polling_reader_loses_no_save(tmp_path):
    stop, seen = threading.Event(), {"errors": [], "restores": 0}
    reader = threading.Thread(target=_poll, args=(tmp_path, stop, seen))
    reader.start()
    manager = ser.CheckpointManager(tmp_path)
    failed = []
    try:
        for step in range(200):
            try:
                manager.save(step, state(step))
            except Exception as e:
                failed.append((step, e))
    finally:
        stop.set()
        reader.join()
    assert failed == []
    assert manager.all_steps() == list(range(200))
    assert [s.status for s in ser.CheckpointManager(tmp_path).check()] == ["good"] * 200
    assert seen["errors"] == [] and seen["restores"] > 0


@pytest.mark.parametrize("max_to_keep", [None, 3])
def test_one_background_manager_shared_by_eight_threads(tmp_path, max_to_keep):
    manager = ser.CheckpointManager(tmp_path, background=True, max_to_keep=max_to_keep)
    errors = []

    def work(first: int) -> None:
        try:
            for step in range(first, 40, 8):
                manager.save(step, state(step))
            manager.wait()
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert manager.all_steps() == (list(range(40)) if max_to_keep is None else [37, 38, 39])
    for step in manager.all_steps():
        assert manager.restore(step)["step"] == step
    assert not [p for p in os.listdir(tmp_path) if p.startswith((".tmp", ".trash"))]


def test_a_background_error_goes_to_the_thread_that_saved(tmp_path, monkeypatch):
    manager = ser.CheckpointManager(tmp_path, background=True)
    real = ser._checkpoint.io.write_parts

    def fail_for_step_1(path, parts):
        if "step_1-" in str(path):
            raise OSError(28, "No space left on device")
        return real(path, parts)

    monkeypatch.setattr(ser._checkpoint.io, "write_parts", fail_for_step_1)
    saved = threading.Event()
    outcome = {}

    def other_thread() -> None:
        manager.save(1, state(1))
        saved.set()
        try:
            manager.wait()
        except ser.CheckpointError as e:
            outcome["error"] = str(e)

    t = threading.Thread(target=other_thread)
    t.start()
    saved.wait()
    manager.save(2, state(2))  # this thread's calls never see the other thread's failure
    manager.wait()
    assert manager.restore()["step"] == 2
    t.join()
    assert outcome["error"].startswith("The background save of step 1 failed: Cannot save")
    assert manager.all_steps() == [2]


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from ramie import serialization as ser

    directory, first, count, keep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    manager = ser.CheckpointManager(directory, max_to_keep=None if keep == "-" else int(keep))
    for step in range(first, first + 2 * count, 2):
        manager.save(step, {"w": np.full(64, step, np.float32), "step": step})
    print("saved", count)
    """
)


def _writers(directory: Path, count: int, keep: str) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(directory), str(first), str(count), keep],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for first in (0, 1)
    ]


@pytest.mark.parametrize("keep", ["-", "4"])
def test_two_processes_save_into_one_directory_while_a_reader_polls(tmp_path, keep):
    stop, seen = threading.Event(), {"errors": [], "restores": 0}
    reader = threading.Thread(target=_poll, args=(tmp_path, stop, seen))
    reader.start()
    try:
        procs = _writers(tmp_path, 60, keep)
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        stop.set()
        reader.join()
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "saved 60"
    steps = ser.CheckpointManager(tmp_path).all_steps()
    assert steps == (list(range(120)) if keep == "-" else [116, 117, 118, 119])
    assert seen["errors"] == []
    assert not [p for p in os.listdir(tmp_path) if p.startswith((".tmp", ".trash"))]


def test_the_same_step_from_two_writers_commits_once(tmp_path):
    barrier = threading.Barrier(2)
    results = []

    def save() -> None:
        manager = ser.CheckpointManager(tmp_path)
        barrier.wait()
        try:
            manager.save(7, state(7))
            results.append("ok")
        except ser.CheckpointError as e:
            results.append(str(e))

    threads = [threading.Thread(target=save) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1
    for r in results:
        assert r == "ok" or r.startswith("A checkpoint for step 7 already exists")
    assert ser.CheckpointManager(tmp_path).all_steps() == [7]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def _fake_writer(directory: Path, token: str, host: str) -> None:
    (directory / f".writer-{token}.lock").write_text(json.dumps({"host": host, "pid": 1}))


def test_a_writer_removes_only_what_is_provably_abandoned(tmp_path):
    manager = ser.CheckpointManager(tmp_path)
    manager.save(0, state(0))
    dead, remote, missing, unborn = "a" * 16, "b" * 16, "c" * 16, "d" * 16
    _fake_writer(tmp_path, dead, socket.gethostname())  # nobody holds its lock
    (tmp_path / f".writer-{unborn}.lock").write_bytes(b"")  # killed before writing its record
    _fake_writer(tmp_path, remote, "another-host")  # its lock may live on another host
    live = _locks.WriterLock(tmp_path)  # another writer, alive, in this process
    names = {
        "dead": f".tmp-step_1-{dead}-{'0' * 12}",
        "remote": f".tmp-step_2-{remote}-{'0' * 12}",
        "missing": f".tmp-step_3-{missing}-{'0' * 12}",  # its lock file is gone
        "unborn": f".tmp-step_7-{unborn}-{'0' * 12}",
        "live": f".tmp-step_4-{live.token()}-{'0' * 12}",
        "unknown": ".tmp-step_5-made-by-hand",
        "trash": f".trash-step_6-{dead}-{'0' * 12}",
    }
    for name in names.values():
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.msgpack").write_bytes(b"x")
    (tmp_path / "step_9").mkdir()  # a step being copied in: never a writer's to delete
    before = sorted(os.listdir(tmp_path))
    for _ in range(3):  # readers change nothing
        reader = ser.CheckpointManager(tmp_path, max_to_keep=1)
        reader.all_steps(), reader.check(), reader.restore(0), reader.metadata(0)
    assert sorted(os.listdir(tmp_path)) == before
    manager.save(1, state(1))
    left = set(os.listdir(tmp_path))
    assert names["dead"] not in left and names["missing"] not in left
    assert names["unborn"] not in left and f".writer-{unborn}.lock" not in left
    assert names["trash"] not in left and f".writer-{dead}.lock" not in left
    for kept in ("remote", "live", "unknown"):
        assert names[kept] in left
    assert f".writer-{remote}.lock" in left and "step_9" in left
    live.release()
    manager.save(2, state(2))
    assert names["live"] not in os.listdir(tmp_path)  # its writer is gone now
