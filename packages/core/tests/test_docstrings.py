"""Every docstring example in ramie.core runs and prints what it shows."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))  # in the checkout
import docstring_checks  # noqa: E402

docstring_checks.define_tests(
    globals(), "ramie.core", minimum=12, without_examples=("_codegen", "_errors")
)
