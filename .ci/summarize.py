#!/usr/bin/env python3
"""Sum the pytest results found in a nox log and decide whether CI passed.

Usage::

    .ci/summarize.py LOG [NOX_EXIT_STATUS]

Prints a table of each nox session's pytest counts (the table the nox test
sessions print as they end), then, alone on the last line, ``tests: N passed,
M failed`` (``, K skipped`` appended when K > 0; errors count as failures).
Exits 1 when nox failed (a non-zero NOX_EXIT_STATUS), when any test failed or
errored, or when no test passed.

>>> parse_counts("==== 12 passed, 1 skipped, 2 warnings in 3.10s ====")
{'passed': 12, 'skipped': 1, 'warnings': 2}
>>> parse_counts("3 failed, 1 error in 0:00:01")
>>> parse_counts("3 failed, 1 error in 1.00s")
{'failed': 3, 'errors': 1}
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# "==== 12 passed, 1 skipped in 3.1s ====", "12 passed in 3.10s (0:00:03)", "no tests ran in 0.01s"
SUMMARY = re.compile(
    r"^=*\s*(?P<counts>(?:\d+ [a-z]+)(?:, \d+ [a-z]+)*|no tests ran)"
    r" in \d+(?:\.\d+)?s(?: \([0-9:.]+\))?\s*=*$"
)
COUNT = re.compile(r"(\d+) ([a-z]+)")
SESSION = re.compile(r"^nox > Running session (?P<name>.+)$")
NO_SUMMARY = "no pytest summary (did the session fail early?)"
KINDS = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed")


def parse_counts(line: str) -> dict[str, int] | None:
    """Return the counts in a pytest summary line, or None if it is not one."""
    match = SUMMARY.match(ANSI.sub("", line).strip())
    if match is None:
        return None
    counts: dict[str, int] = {}
    for number, kind in COUNT.findall(match["counts"]):
        kind = "errors" if kind == "error" else "warnings" if kind == "warning" else kind
        counts[kind] = counts.get(kind, 0) + int(number)
    return counts


def summarize(lines: list[str]) -> tuple[list[tuple[str, str | None]], dict[str, int]]:
    """Find each session's pytest summary line (its last one) and add them up."""
    sessions: list[tuple[str, str | None]] = []
    current = "pytest"
    for raw in lines:
        line = ANSI.sub("", raw).strip()
        session = SESSION.match(line)
        if session:
            current = session["name"]
            sessions.append((current, None))
        elif parse_counts(line) is not None:
            if not sessions or sessions[-1][0] != current:
                sessions.append((current, None))
            sessions[-1] = (current, line.strip("= "))
    totals = dict.fromkeys(KINDS, 0)
    for _, line in sessions:
        for kind, number in (parse_counts(line) or {}).items() if line else ():
            if kind in totals:
                totals[kind] += number
    return sessions, totals


def table(rows: list[tuple[str, dict[str, int] | None]]) -> list[str]:
    """Lay out each session's counts (None: it printed no summary) and their total.

    Errors count as failures. The nox ``tests`` session prints this table as it
    ends, and so does CI after its own run, from the same counts.

    >>> print(*table([("tests(package='core')", {"passed": 3, "errors": 1}), ("nn", None)]),
    ...       sep="\\n")
    session                passed  failed  skipped
    tests(package='core')       3       1        0
    nn                          -       -        -  no pytest summary (did the session fail early?)
    total                       3       1        0
    """
    width = max([len("session"), len("total"), *(len(name) for name, _ in rows)])
    out = [f"{'session':<{width}}  passed  failed  skipped"]
    totals = dict.fromkeys(("passed", "failed", "skipped"), 0)
    for name, counts in rows:
        if counts is None:
            out.append(f"{name:<{width}}  {'-':>6}  {'-':>6}  {'-':>7}  {NO_SUMMARY}")
            continue
        row = {
            "passed": counts.get("passed", 0),
            "failed": counts.get("failed", 0) + counts.get("errors", 0),
            "skipped": counts.get("skipped", 0),
        }
        for kind, number in row.items():
            totals[kind] += number
        out.append(f"{name:<{width}}  {row['passed']:>6}  {row['failed']:>6}  {row['skipped']:>7}")
    out.append(
        f"{'total':<{width}}  {totals['passed']:>6}  {totals['failed']:>6}  {totals['skipped']:>7}"
    )
    return out


def main(argv: list[str]) -> int:
    """Print the per-session lines and the total; return the exit status."""
    if len(argv) not in (2, 3):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    lines = Path(argv[1]).read_text(encoding="utf-8", errors="replace").splitlines()
    nox_status = int(argv[2]) if len(argv) == 3 else 0
    sessions, totals = summarize(lines)

    print()
    rows = [(name, parse_counts(line) if line else None) for name, line in sessions]
    print(*table(rows), sep="\n")
    problems = []
    if nox_status != 0:
        problems.append(f"nox exited with status {nox_status}")
    if totals["failed"] or totals["errors"]:
        problems.append(f"{totals['failed']} failed, {totals['errors']} errors")
    if totals["passed"] == 0:
        problems.append("no test ran")
    for problem in problems:
        print(f"FAILED: {problem}")

    failed = totals["failed"] + totals["errors"]
    total = f"tests: {totals['passed']} passed, {failed} failed"
    if totals["skipped"]:
        total += f", {totals['skipped']} skipped"
    print(total)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
