#!/usr/bin/env python3
"""Run a command, copying its output (stderr merged) to stdout and to a file.

Usage::

    .ci/tee.py LOG COMMAND [ARG ...]

Exits with the command's status. The nox test sessions run pytest through it so
that pytest's output is shown as it comes and its summary line can be read
afterwards (by ``.ci/summarize.py``'s parser) for the table printed at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    """Run ``argv[2:]``, teeing its output into the file ``argv[1]``; return its status."""
    if len(argv) < 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    with open(argv[1], "wb") as log:
        child = subprocess.Popen(argv[2:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert child.stdout is not None
        try:
            # Chunks as they come, not lines: pytest's progress dots show one by one.
            while chunk := os.read(child.stdout.fileno(), 65536):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                log.write(chunk)
        finally:  # interrupted (nox got Ctrl-C): the command must not outlive us
            if child.poll() is None:
                child.terminate()
        return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
