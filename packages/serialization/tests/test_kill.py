"""SIGKILL at random moments during saves never loses the latest committed checkpoint.

A child process (forked, so it does not pay for importing jax again) saves a
~16 MB state in a loop, with pruning (max_to_keep) and every other round in the
background; the test kills it with SIGKILL after a random delay, 50 times, then
opens the directory afresh, checks the latest committed step restores (CRC
verified) with exactly the contents that step was saved with, and starts the next
child from there. Meanwhile another forked process polls the directory as an
evaluator would, restoring the latest step over and over: no restore may fail
verification or return other contents. The children touch numpy and files only,
never jax, so forking is safe.
"""

import json
import os
import random
import signal
import time
import traceback
import warnings

import numpy as np
import pytest

from ramie import serialization as ser

KILLS = 50
N = 1 << 20  # float32 elements per array: 4 arrays, 16 MiB per checkpoint


def state_for(step: int) -> dict:
    return {
        "layers": [{"kernel": np.full(N, step, np.float32)} for _ in range(3)],
        "emb": np.arange(N, dtype=np.float32) + step,
        "step": step,
        "note": f"step {step}",
    }


def check(state: dict, step: int) -> None:
    assert state["step"] == step and state["note"] == f"step {step}"
    for layer in state["layers"]:
        assert layer["kernel"][0] == step and (layer["kernel"] == step).all()
    np.testing.assert_array_equal(state["emb"], np.arange(N, dtype=np.float32) + step)


def _child(directory: str, first: int, background: bool, started: str) -> None:
    manager = ser.CheckpointManager(directory, max_to_keep=2, background=background)
    open(started, "w").close()  # the kill's random delay counts from here, not from fork
    step = first
    while True:
        manager.save(step, state_for(step))
        step += 1


def _reader(directory: str, stop: str, result: str) -> None:
    """Poll the directory as an evaluator would; record what every restore gave."""
    manager = ser.CheckpointManager(directory)
    counts = {"restored": 0, "pruned while reading": 0, "wrong": [], "errors": []}
    while not os.path.exists(stop):
        step = manager.latest_step()
        if step is None:
            continue
        try:
            state = manager.restore(step)  # numpy only: no jax in a forked child
            state["layers"] = [state["layers"][str(i)] for i in range(len(state["layers"]))]
            check(state, step)
            counts["restored"] += 1
        except ser.CheckpointCorruptError as e:
            counts["errors"].append(str(e))
        except ser.CheckpointError as e:
            if "was removed while it was being read" in str(e) or "No committed" in str(e):
                counts["pruned while reading"] += 1  # max_to_keep removed it meanwhile
            else:
                counts["errors"].append(str(e))
        except AssertionError as e:
            counts["wrong"].append(f"step {step}: {e}")
        except Exception:  # anything else is a bug: keep its traceback
            counts["errors"].append(traceback.format_exc())
    with open(result, "w") as f:
        json.dump(counts, f)


def _hidden_leftovers(directory) -> list[str]:
    """Temp and trash entries in ``directory`` (none while no writer has made it yet)."""
    if not directory.exists():
        return []
    return sorted(p for p in os.listdir(directory) if p.startswith((".tmp", ".trash")))


def _wait_for(path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"the child did not start within {timeout} s"
        time.sleep(0.001)


def _fork(fn, *args) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # jax warns about fork in general
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            fn(*args)
        finally:
            os._exit(0)
    return pid


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_during_saves_keeps_the_latest_checkpoint(tmp_path):
    rng = random.Random(1234)
    target = state_for(0)
    latest = None
    seen_steps = set()
    directory = tmp_path / "ckpt"
    stop, result = tmp_path / "stop", tmp_path / "result.json"
    reader = _fork(_reader, str(directory), str(stop), str(result))
    # On a loaded machine one 16 MiB save can outlast the longest delay, and then no
    # kill would ever land after a commit: stretch the delays while no step commits
    # (and shrink them back once steps commit), so kills keep landing both mid-save
    # and between saves whatever the load.
    stretch = 1.0
    for kill in range(KILLS):
        first = 0 if latest is None else latest + 1
        started = tmp_path / f"started-{kill}"
        pid = _fork(_child, str(directory), first, kill % 2 == 1, str(started))
        _wait_for(started)  # on a loaded machine a fork can take longer than the delay
        time.sleep(rng.uniform(0.02, 0.35) * stretch)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL

        leftovers = _hidden_leftovers(directory)
        manager = ser.CheckpointManager(directory, max_to_keep=2)  # a reader: removes nothing
        now = manager.latest_step()
        if latest is not None:
            assert now is not None and now >= latest
        if now is not None:
            check(manager.restore(target=target), now)
            # kills between a rename and the pruning leave steps over max_to_keep for a
            # while: the next committed save prunes them
            assert manager.all_steps()[-1] == now
            seen_steps.add(now)
        assert _hidden_leftovers(directory) == leftovers
        progressed = now is not None and (latest is None or now > latest)
        stretch = max(1.0, stretch / 1.5) if progressed else min(16.0, stretch * 1.5)
        latest = now
    stop.touch()
    _, status = os.waitpid(reader, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    counts = json.loads(result.read_text())
    assert counts["errors"] == [] and counts["wrong"] == []
    assert counts["restored"] >= KILLS
    assert latest is not None and len(seen_steps) >= KILLS // 3

    # The next writer removes what the killed ones left (their locks died with them).
    writer = ser.CheckpointManager(directory, max_to_keep=2)
    writer.save(latest + 1, state_for(latest + 1))
    assert writer.all_steps() == [latest, latest + 1]
    hidden = sorted(p for p in os.listdir(directory) if p.startswith("."))
    assert hidden[0] == ".ramie-checkpoints.lock" and len(hidden) == 2
    assert hidden[1].startswith(".writer-")  # the new writer's own lock, nothing else
    check(writer.restore(target=target), latest + 1)
