"""Packaging tests for ramie-training: the shared checks of tools/packaging_checks.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))  # in the checkout
import packaging_checks as checks  # noqa: E402

REQUIRES = {"jax", "numpy", "optax", "ramie-core"}
FORBIDDEN = checks.packages_except("ramie.core", "ramie.training")
checks.define_tests(
    globals(), "ramie-training", "ramie.training", REQUIRES, {"ramie-core"}, FORBIDDEN
)
