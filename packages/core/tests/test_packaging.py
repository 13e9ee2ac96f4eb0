"""Packaging tests for ramie-core: the shared checks of tools/packaging_checks.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))  # in the checkout
import packaging_checks as checks  # noqa: E402

REQUIRES = {"jax", "numpy"}
FORBIDDEN = checks.packages_except("ramie.core")
checks.define_tests(
    globals(),
    "ramie-core",
    "ramie.core",
    REQUIRES,
    ramie_requires=set(),
    forbidden=FORBIDDEN,
    extras={"display": {"treescope"}, "test": {"pytest", "hypothesis", "treescope"}},
)
