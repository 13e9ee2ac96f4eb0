"""Packaging tests for ramie-serialization: the shared checks of tools/packaging_checks.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))  # in the checkout
import packaging_checks as checks  # noqa: E402

REQUIRES = {"jax", "msgpack", "ramie-core", "safetensors"}
FORBIDDEN = checks.packages_except("ramie.core", "ramie.serialization")
checks.define_tests(
    globals(),
    "ramie-serialization",
    "ramie.serialization",
    REQUIRES,
    {"ramie-core"},
    FORBIDDEN,
    extras={"fast": {"isal"}},
)
