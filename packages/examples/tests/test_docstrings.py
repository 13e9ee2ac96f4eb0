"""Every docstring example in ramie.examples runs and prints what it shows."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))  # in the checkout
import docstring_checks  # noqa: E402

# The examples are programs: their module docstrings show shell commands, run by the
# other tests of this folder.
PROGRAMS = (
    "__main__",
    "mnist",
    "polyak",
    "lora",
    "gnn",
    "resnet",
    "lm",
    "vae",
    "gan",
    "seq2seq",
    "segmentation",
)
docstring_checks.define_tests(globals(), "ramie.examples", minimum=8, without_examples=PROGRAMS)
