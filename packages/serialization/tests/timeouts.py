"""Hang-prone test cases: a per-case deadline (SIGALRM raises), and special files to read."""

import contextlib
import os
import signal


class Hang(Exception):
    """The case ran past its deadline."""


@contextlib.contextmanager
def deadline(seconds: float):
    """Raise ``Hang`` in the main thread if the block runs longer than ``seconds``."""

    def expire(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


SPECIAL_KINDS = {
    "fifo": "FIFO (named pipe)",
    "device": "character device",
    "directory": "directory",
    "symlink to fifo": "FIFO (named pipe)",
}


def make_special(path, kind: str) -> str:
    """Put a special file of ``kind`` (a SPECIAL_KINDS key) at ``path``; return its name."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        os.symlink("/dev/zero", path)
    elif kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path.parent / f"{path.name}.pipe")
        os.symlink(path.parent / f"{path.name}.pipe", path)
    return SPECIAL_KINDS[kind]
