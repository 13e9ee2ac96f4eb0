"""Packaging tests for ramie: the shared checks of tools/packaging_checks.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))  # in the checkout
import packaging_checks as checks  # noqa: E402

REQUIRES = {
    "jax",
    "ramie-core",
    "ramie-layers",
    "ramie-transforms",
    "ramie-training",
    "ramie-serialization",
}
FORBIDDEN = None
checks.define_tests(globals(), "ramie", "ramie.nn", REQUIRES, REQUIRES - {"jax"}, FORBIDDEN)
