"""Background saves, one in flight per calling thread, whose errors reach that thread.

Each thread that calls ``save`` on a background manager has at most one save in
flight; its failure is kept for that thread and raised by its next ``save()`` or
``wait()``, never by another thread's call. Saves run on non-daemon threads, so
Python waits for them before exiting; an ``atexit`` hook then prints any failure
nobody has seen to stderr and ends the process with status 1 (``os._exit``: the
only way an ``atexit`` hook can change the exit status).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

from . import _errors

_LIVE: set[BackgroundSaves] = set()
_LIVE_LOCK = threading.Lock()
_HOOKED = False


class BackgroundSaves:
    """The in-flight saves and unseen failures of one manager, per issuing thread."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = threading.Lock()
        self._running: dict[threading.Thread, threading.Thread] = {}
        self._failed: dict[threading.Thread, list[tuple[int, BaseException]]] = {}

    def start(self, step: int, work: Callable[[], None]) -> None:
        """Run ``work`` (the save of ``step``) on a new thread, for the calling thread."""
        caller = threading.current_thread()

        def run() -> None:
            try:
                work()
            except BaseException as e:  # kept for the caller's next save()/wait()
                with self._lock:
                    self._failed.setdefault(caller, []).append((step, e))

        worker = threading.Thread(target=run, name=f"ramie-checkpoint-{step}", daemon=False)
        _watch(self)
        with self._lock:
            self._running[caller] = worker
        worker.start()

    def wait(self) -> None:
        """Wait for the calling thread's save; raise its failure (each failure once)."""
        caller = threading.current_thread()
        with self._lock:
            worker = self._running.pop(caller, None)
        if worker is not None:
            worker.join()
        with self._lock:
            failed = self._failed.pop(caller, [])
        if failed:
            step, error = failed[0]
            raise _errors.CheckpointError(
                _errors.BACKGROUND_FAILED.format(step=step, detail=describe(error))
            ) from error

    def join(self) -> None:
        """Wait for the calling thread's save without raising (restore() reads after it)."""
        with self._lock:
            worker = self._running.get(threading.current_thread())
        if worker is not None:
            worker.join()

    def unseen(self) -> list[tuple[int, BaseException]]:
        """Wait for every save; return (and forget) every failure no thread has seen."""
        with self._lock:
            workers = list(self._running.values())
            self._running.clear()
        for worker in workers:
            worker.join()
        with self._lock:
            failed = [f for fs in self._failed.values() for f in fs]
            self._failed.clear()
        return failed


def describe(error: BaseException) -> str:
    """The text of a failed save: our own errors say it all, others get the advice."""
    if isinstance(error, _errors.CheckpointError):
        return str(error)
    return _errors.UNEXPECTED_FAILURE.format(type_name=type(error).__name__, error=error)


def _watch(saves: BackgroundSaves) -> None:
    global _HOOKED
    with _LIVE_LOCK:
        _LIVE.add(saves)
        if not _HOOKED:
            atexit.register(report_at_exit)
            _HOOKED = True


def report_at_exit() -> None:
    """Print every failed background save nobody saw; exit with status 1 if there was one."""
    with _LIVE_LOCK:
        live = list(_LIVE)
        _LIVE.clear()
    failures = [(saves.directory, f) for saves in live for f in saves.unseen()]
    for directory, (step, error) in failures:
        detail = "".join(traceback.format_exception(error)).rstrip()
        print(
            _errors.BACKGROUND_UNREPORTED.format(step=step, directory=directory, detail=detail),
            file=sys.stderr,
        )
    if failures:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: S110 - a closed stream must not hide the status
                pass
        os._exit(1)
