"""Writing a benchmark's table into ``bench/RESULTS.md``, between its markers."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_block(name: str, table: str) -> None:
    """Replace what sits between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    text = RESULTS.read_text()
    start = text.index(f"<!-- {name}:start -->")
    end = text.index(f"<!-- {name}:end -->")
    RESULTS.write_text(text[:start] + f"<!-- {name}:start -->\n```\n{table}\n```\n" + text[end:])
