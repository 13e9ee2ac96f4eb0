"""SIGKILL at random moments during saves never loses the latest committed checkpoint.

A child process (forked, so it does not pay for importing jax again) saves a
~16 MB state in a loop, with pruning (max_to_keep) and every other round in the
background; the test kills it with SIGKILL after a random delay, then opens the
directory afresh, checks the latest committed step restores (CRC verified) with
exactly the contents that step was saved with, and starts the next child from
there. The child touches numpy and files only, never jax, so forking is safe.
"""

import os
import random
import signal
import time
import warnings

import numpy as np
import pytest

from ramie import serialization as ser

KILLS = 24
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


def _child(directory: str, first: int, background: bool) -> None:
    manager = ser.CheckpointManager(directory, max_to_keep=2, background=background)
    step = first
    while True:
        manager.save(step, state_for(step))
        step += 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_during_saves_keeps_the_latest_checkpoint(tmp_path):
    rng = random.Random(1234)
    target = state_for(0)
    latest = None
    seen_steps = set()
    for kill in range(KILLS):
        first = 0 if latest is None else latest + 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # jax warns about fork in general
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                _child(str(tmp_path), first, background=kill % 2 == 1)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.02, 0.35))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL

        manager = ser.CheckpointManager(tmp_path, max_to_keep=2)  # cleans leftovers
        assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]
        now = manager.latest_step()
        if latest is not None:
            assert now is not None and now >= latest
        if now is not None:
            check(manager.restore(target=target), now)
            # a kill between the rename and the pruning may leave one step more for a while
            assert manager.all_steps()[-1] == now and len(manager.all_steps()) <= 3
            seen_steps.add(now)
        latest = now
    assert latest is not None and len(seen_steps) >= KILLS // 3
