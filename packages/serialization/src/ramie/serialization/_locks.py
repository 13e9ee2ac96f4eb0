"""Locks that let several writers share a checkpoint directory, and the cleanup they allow.

Two kinds of ``fcntl.flock`` locks, both on hidden files of the directory:

- the *directory lock* (``.ramie-checkpoints.lock``), held by a writer while it
  renames a finished step into place, applies the retention policy or removes
  abandoned leftovers; so only one writer at a time changes the set of steps;
- one *writer lock* per writing manager and process (``.writer-<token>.lock``,
  holding the host name and pid), held for as long as the manager may write. A
  temporary directory ``.tmp-step_<n>-<token>-<id>`` belongs to the writer whose
  token it carries.

A temporary directory is *provably abandoned* when its writer's lock file is
gone, or was written on this host and nobody holds its lock: the kernel
releases a ``flock`` when its process dies, however it dies. Lock files written
on another host (a shared file system, where locks may not reach across hosts)
and temporary directories of unknown shape are never touched. Readers take no
lock and create nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import threading
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path

DIRECTORY_LOCK = ".ramie-checkpoints.lock"
WRITER_PREFIX, TMP_PREFIX, TRASH_PREFIX = ".writer-", ".tmp-", ".trash-"
_TOKEN = r"[0-9a-f]{16}"
_WRITER = re.compile(rf"^\.writer-({_TOKEN})\.lock$")
_TMP = re.compile(rf"^\.tmp-step_[0-9]+-({_TOKEN})-[0-9a-f]{{12}}$")
_TRASH = re.compile(rf"^\.trash-step_[0-9]+-{_TOKEN}-[0-9a-f]{{12}}$")
_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Hold the directory lock (blocking until it is free); threads queue too."""
    fd = os.open(directory / DIRECTORY_LOCK, _FLAGS, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class WriterLock:
    """This manager's writer lock in one directory, taken at its first save.

    ``token()`` returns the token temporary directories are named with. A forked
    child gets a lock of its own (the parent's lock file stays the parent's). The
    lock and its file are dropped when the manager is garbage collected or the
    interpreter exits (``weakref.finalize``), and only by the process that took it.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self._mutex = threading.Lock()
        self._finalizer: weakref.finalize | None = None
        self._fd = -1
        self._pid = 0
        self._token = ""

    def token(self) -> str:
        with self._mutex:
            if self._finalizer is None or self._pid != os.getpid():
                if self._finalizer is not None:  # a forked child: the parent's lock stays its own
                    self._finalizer.detach()
                    os.close(self._fd)
                self._fd, self._token = _take_writer_lock(self.directory)
                self._pid = os.getpid()
                path = self.directory / f"{WRITER_PREFIX}{self._token}.lock"
                self._finalizer = weakref.finalize(self, _drop, path, self._fd, self._pid)
            return self._token

    def release(self) -> None:
        """Drop the lock and its file (the manager writes no more)."""
        with self._mutex:
            if self._finalizer is not None:
                self._finalizer()
            self._finalizer = None


def _drop(path: Path, fd: int, pid: int) -> None:
    if os.getpid() != pid:
        return  # a forked child's copy: the lock is its parent's
    try:
        os.unlink(path)
    except OSError:
        pass
    os.close(fd)


def _take_writer_lock(directory: Path) -> tuple[int, str]:
    while True:
        token = uuid.uuid4().hex[:16]
        path = directory / f"{WRITER_PREFIX}{token}.lock"
        fd = os.open(path, _FLAGS | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # A cleaner may have locked and unlinked the fresh file before we locked it.
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                raise FileNotFoundError(path)
        except OSError:
            os.close(fd)
            continue
        record = {"host": socket.gethostname(), "pid": os.getpid()}
        os.write(fd, json.dumps(record).encode())
        return fd, token


def tmp_name(step: int, token: str) -> str:
    return f"{TMP_PREFIX}step_{step}-{token}-{uuid.uuid4().hex[:12]}"


def trash_name(step: int, token: str) -> str:
    return f"{TRASH_PREFIX}step_{step}-{token}-{uuid.uuid4().hex[:12]}"


def _owner_gone(directory: Path, token: str, verdicts: dict[str, bool], locked: dict) -> bool:
    """Whether writer ``token`` provably writes no more (its lock file then goes in ``locked``)."""
    if token not in verdicts:
        verdicts[token] = _probe(directory, token, locked)
    return verdicts[token]


def _probe(directory: Path, token: str, locked: dict[str, int]) -> bool:
    path = directory / f"{WRITER_PREFIX}{token}.lock"
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            record = json.loads(os.read(fd, 4096))
        except ValueError:  # empty or cut short: its writer died before it wrote its record
            record = {"host": socket.gethostname()}
        if not isinstance(record, dict) or record.get("host") != socket.gethostname():
            raise ValueError("written on another host: its lock may not be visible here")
    except (OSError, ValueError):
        os.close(fd)
        return False  # alive, or not ours to judge
    locked[token] = fd
    return True


def remove_abandoned(directory: Path, own_token: str) -> list[str]:
    """Remove leftovers of dead writers; call with the directory lock held.

    Removes temporary directories whose writer provably died (see the module
    docstring), trash left by a retention interrupted mid-way (trash is only
    made and removed under the directory lock), and dead writers' lock files.
    Returns the names removed.
    """
    verdicts: dict[str, bool] = {}
    locked: dict[str, int] = {}
    removed = []
    try:
        for entry in os.scandir(directory):
            name = entry.name
            tmp, trash, writer = _TMP.match(name), _TRASH.match(name), _WRITER.match(name)
            if tmp and tmp.group(1) != own_token:
                if _owner_gone(directory, tmp.group(1), verdicts, locked):
                    remove_tree(Path(entry.path))
                    removed.append(name)
            elif trash:
                remove_tree(Path(entry.path))
                removed.append(name)
            elif writer and writer.group(1) != own_token:
                _owner_gone(directory, writer.group(1), verdicts, locked)
        for token in locked:
            with contextlib.suppress(OSError):
                os.unlink(directory / f"{WRITER_PREFIX}{token}.lock")
                removed.append(f"{WRITER_PREFIX}{token}.lock")
    finally:
        for fd in locked.values():
            os.close(fd)
    return removed


def remove_tree(path: Path) -> None:
    """Delete a directory tree (or a symlink in its place); missing is fine."""
    if path.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    shutil.rmtree(path, ignore_errors=True)
