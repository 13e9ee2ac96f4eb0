"""Shared fixtures: the golden-tree module is importable from the tests directory."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
