"""Test setup: 8 host CPU devices for the sharding tests, and the shared test models."""

import os
import sys
from pathlib import Path

# Must happen before jax initialises its backends (nothing imports jax before conftest).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
sys.path.insert(0, str(Path(__file__).resolve().parent))
