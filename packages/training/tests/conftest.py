"""Test setup: make the shared test models (training_models.py) importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
