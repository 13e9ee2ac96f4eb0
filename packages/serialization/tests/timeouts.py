"""A per-case deadline for tests that could hang (FIFOs, huge claims): SIGALRM raises."""

import contextlib
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
