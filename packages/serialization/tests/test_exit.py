"""A failed background save nobody waited for is reported at exit, with a non-zero status."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from ramie import serialization as ser
    from ramie.serialization import _checkpoint_io as io

    directory, mode = sys.argv[1], sys.argv[2]
    real = io.write_parts

    def disk_full(path, parts):
        if mode != "ok":
            raise OSError(28, "No space left on device", str(path))
        return real(path, parts)

    io.write_parts = disk_full
    manager = ser.CheckpointManager(directory, background=True)
    manager.save(0, {"x": np.arange(1 << 20, dtype=np.float32)})
    if mode == "waited":
        try:
            manager.wait()
        except ser.CheckpointError as e:
            print("seen:", str(e)[:36])
    print("main done", flush=True)
    """
)


def _run(tmp_path, mode):
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "ckpt"), mode],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_exit_without_wait_reports_the_failure_and_fails(tmp_path):
    result = _run(tmp_path, "fail")
    assert result.returncode == 1
    assert result.stdout == "main done\n"
    assert (
        f"ramie.serialization: the background save of step 0 into {tmp_path / 'ckpt'} failed "
        "and nobody called manager.wait() or save() afterwards to see it: "
    ) in result.stderr
    assert "Cannot save checkpoint step 0: writing " in result.stderr
    assert "OSError: [Errno 28] No space left on device" in result.stderr


def test_an_unfinished_save_is_completed_before_exit(tmp_path):
    result = _run(tmp_path, "ok")
    assert result.returncode == 0 and result.stderr == ""
    assert (tmp_path / "ckpt" / "step_0" / "COMMIT").is_file()
    assert sorted(os.listdir(tmp_path / "ckpt")) == [".ramie-checkpoints.lock", "step_0"]


def test_a_failure_seen_by_wait_is_not_reported_again(tmp_path):
    result = _run(tmp_path, "waited")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == "seen: The background save of step 0 failed\nmain done\n"
