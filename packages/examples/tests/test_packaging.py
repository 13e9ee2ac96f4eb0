"""Packaging tests for ramie-examples: the shared checks of tools/packaging_checks.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))  # in the checkout
import packaging_checks as checks  # noqa: E402

REQUIRES = {"jax", "ramie", "numpy", "optax", "tqdm", "scikit-learn"}
EXTRAS = {"plot": {"matplotlib"}, "gnn": {"jraph", "networkx"}}
FORBIDDEN = None  # examples may import every ramie package
checks.define_tests(
    globals(), "ramie-examples", "ramie.examples", REQUIRES, {"ramie"}, FORBIDDEN, EXTRAS
)
