"""Test setup: 8 host CPU devices for the sharded training test."""

import os

# Must happen before jax initialises its backends (nothing imports jax before conftest).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
