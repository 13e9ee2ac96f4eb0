"""Transform frames: which ramie transforms are tracing, per thread, and what they own.

A transform pushes a ``Frame`` (``transform_frame``) while it traces the
user's function. Variables check the innermost frame of their thread when a
traced value is written into them (a captured mutation is refused) and report
reads of Variables no running frame owns (``on_read``). Frames are
thread-local: functions traced at the same time in different threads never
see each other's frames.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class Frame:
    """One running (tracing) ramie transform: its name and the objects it owns.

    A transform pushes a Frame while it traces the user's function and adds
    the ids of the Variables it rebuilt from its arguments; Variables created
    while the frame is on top are added as they are made. Assigning a traced
    value to a Variable that the innermost frame does not own means the
    function mutates an object it captured instead of receiving it, which
    cannot be propagated out of the transform (see ``Variable.value``).
    """

    __slots__ = ("name", "owned", "on_read")

    def __init__(self, name: str, on_read=None):
        self.name = name
        self.owned: set[int] = set()
        #: Called with a Variable read inside the frame that no running frame owns.
        self.on_read = on_read

    def own(self, objects) -> None:
        """Mark ``objects`` (e.g. ``flatten(rebuilt).refs``) as owned by this transform."""
        self.owned.update(map(id, objects))


class _ThreadState(threading.local):
    """Per-thread trace state: the stack of transforms tracing in this thread."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []


_LOCAL = _ThreadState()
#: How many frames are open in all threads together. Zero outside every transform,
#: so eager code pays one list-item test before skipping all frame bookkeeping.
ACTIVE = [0]
_ACTIVE_LOCK = threading.Lock()


def frames() -> list[Frame]:
    """The transforms tracing in the calling thread, innermost last (empty outside)."""
    return _LOCAL.frames


def current_frame() -> Frame | None:
    """The innermost transform tracing in the calling thread, or None."""
    if not ACTIVE[0]:
        return None
    stack = _LOCAL.frames
    return stack[-1] if stack else None


def __getattr__(name: str):
    # ``FRAMES`` is the calling thread's stack (kept for code written before frames
    # became per-thread).
    if name == "FRAMES":
        return _LOCAL.frames
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextlib.contextmanager
def transform_frame(name: str, on_read=None) -> Iterator[Frame]:
    """Run a block as transform ``name`` tracing the user's function.

    For authors of transforms: inside the block, assigning a traced value to
    a Variable the frame does not own raises ``CapturedMutationError``.
    Frames are per thread: functions traced at the same time in different
    threads never see each other's frames. ``on_read(variable)``, if given, is
    called when the function reads a Variable that no running frame owns (one
    captured from outside, whose value a compiling transform bakes in).

    >>> from ramie.core import Param
    >>> from ramie.core.extend import transform_frame
    >>> with transform_frame("jit") as frame:
    ...     p = Param(1.0)  # made inside: owned
    ...     frame.owned == {id(p)}
    True
    """
    frame = Frame(name, on_read)
    stack = _LOCAL.frames
    stack.append(frame)
    with _ACTIVE_LOCK:
        ACTIVE[0] += 1
    try:
        yield frame
    finally:
        with _ACTIVE_LOCK:
            ACTIVE[0] -= 1
        stack.remove(frame)


def read_outside(variable) -> None:
    """Called by ``Variable.value`` while frames are open: report a captured read."""
    stack = _LOCAL.frames
    if not stack:
        return
    vid = id(variable)
    for frame in stack:
        if vid in frame.owned:
            return
    for frame in reversed(stack):
        if frame.on_read is not None:
            frame.on_read(variable)
            return


def owned_by_frame(obj) -> None:
    """Record that ``obj`` was made inside the innermost transform of this thread."""
    stack = _LOCAL.frames
    if stack:
        stack[-1].owned.add(id(obj))
