"""The CI scripts the nox test sessions lean on: .ci/tee.py and .ci/summarize.py's table."""

from __future__ import annotations

import doctest
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", ["tools/release.py", ".ci/summarize.py"])
def test_doctests(path: str) -> None:
    failures, tried = doctest.testmod(_load(ROOT / path))
    assert (failures, tried > 0) == (0, True)


def test_tee_shows_and_keeps_the_output_and_passes_the_status_on(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    code = "import sys; print('one'); print('two', file=sys.stderr); sys.exit(3)"
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "tee.py"), str(log), sys.executable, "-c", code],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3
    assert sorted(done.stdout.splitlines()) == ["one", "two"]
    assert sorted(log.read_text().splitlines()) == ["one", "two"]


NOX_LOG = """\
nox > Running session tools
13 passed in 18.11s
nox > Running session tests(package='core')
== 1 failed, 420 passed, 2 skipped, 3 warnings in 81.50s (0:01:21) ==
nox > Running session tests(package='nn')
nox > Session tests(package='nn') failed.
"""


def test_ci_prints_the_table_and_the_total_line(tmp_path: Path) -> None:
    log = tmp_path / "nox.log"
    log.write_text(NOX_LOG)
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "summarize.py"), str(log), "1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "",
        "session                passed  failed  skipped",
        "tools                      13       0        0",
        "tests(package='core')     420       1        2",
        "tests(package='nn')         -       -        -  no pytest summary (did the session "
        "fail early?)",
        "total                     433       1        2",
        "FAILED: nox exited with status 1",
        "FAILED: 1 failed, 0 errors",
        "tests: 433 passed, 1 failed, 2 skipped",
    ]


def test_tee_ends_its_command_when_interrupted(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = (
        "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); "
        "print('ready', flush=True); time.sleep(600)"
    )
    tee = subprocess.Popen(
        [sys.executable, str(ROOT / ".ci" / "tee.py"), str(tmp_path / "log"), sys.executable,
         "-c", code, str(pid_file)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert tee.stdout.readline() == b"ready\n"
    tee.send_signal(signal.SIGINT)
    tee.wait(timeout=60)
    child = int(pid_file.read_text())
    for _ in range(100):  # the child is terminated, then reaped by tee's wait
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("tee.py left its command running after SIGINT")
