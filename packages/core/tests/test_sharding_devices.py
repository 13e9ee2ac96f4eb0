"""Runs sharding_cases.py on 8 virtual CPU devices, in a subprocess (XLA_FLAGS must be
set before jax starts, and the other core tests run on one device)."""

import os
import subprocess
import sys
from pathlib import Path


def test_sharding_on_eight_cpu_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    env["JAX_PLATFORMS"] = "cpu"
    here = Path(__file__).parent
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "sharding_cases.py"],
        cwd=here,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
