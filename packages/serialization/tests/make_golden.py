"""Regenerate tests/golden/*.msgpack: ``python tests/make_golden.py`` (only when the format
changes on purpose; the golden files pin the Flax-compatible byte layout)."""

from pathlib import Path

from golden_trees import trees

from ramie.serialization import to_bytes

if __name__ == "__main__":
    out = Path(__file__).parent / "golden"
    for name, tree in trees().items():
        (out / f"{name}.msgpack").write_bytes(to_bytes(tree))
