"""Every docstring example in ramie.training runs and prints what it shows."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))  # in the checkout
import docstring_checks  # noqa: E402

docstring_checks.define_tests(
    globals(), "ramie.training", minimum=6, without_examples=("_errors", "_groups")
)
