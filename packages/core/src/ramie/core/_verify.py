"""Verify mode: every cached structure is checked against a fresh walk before use.

ramie trusts a cached flatten while the structure version is unchanged. In
verify mode (``RAMIE_CHECK_STRUCTURE=1`` in the environment, or inside
``with check_structure():``) each use of a cached structure (``flatten`` hits
and ``FlatGraph.is_current``, the check ``nn.jit`` makes per call) re-walks the
objects and raises ``StaleStructureError``, naming the paths, when the cache
differs from what is really there. It costs a full walk per call: use it in
tests and CI, not in training runs.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from . import _errors, _flatgraph, _graph
from ._diff import changes
from ._flatgraph import _Slot, _TupleHolder

_LOCK = threading.Lock()
_DEPTH = [0]
_FAST_IS_CURRENT = _flatgraph.FlatGraph.is_current


def _same_holder(a, b) -> bool:
    if type(a) is _TupleHolder:  # made anew by each walk: compare what it stands for
        return type(b) is _TupleHolder and a.key == b.key and _same_holder(a.holder, b.holder)
    return a is b


def _first_ref_mismatch(cached, fresh) -> list[str]:
    out = []
    for path, a, b in zip(cached.paths, cached.refs, fresh.refs, strict=True):
        if type(a) is _Slot:
            same = type(b) is _Slot and a.key == b.key and _same_holder(a.holder, b.holder)
        else:
            same = a is b
        if not same:
            out.append(f"'{_errors.format_path(path)}': the cache holds another object there")
    return out


def verify(fg: _flatgraph.FlatGraph) -> bool:
    """Re-walk ``fg``'s roots; raise StaleStructureError if the cache differs.

    Returns False (the cache is not usable) when a root has died.
    """
    roots = [r() for r in fg._roots]
    if not roots or any(r is None for r in roots):
        return False
    obj = tuple(roots) if fg._tuple_root else roots[0]
    fresh = _graph.walk(obj)
    found: list[str] = []
    if fresh.graphdef != fg.graphdef:
        found = [str(c) for c in changes(fg.graphdef, fresh.graphdef)]
        found = found or ["the GraphDefs differ (no path-level difference found)"]
    else:
        found = _first_ref_mismatch(fg, fresh)
    if found:
        raise _errors.StaleStructureError(
            _errors.STALE_STRUCTURE.format(
                root=" and ".join(type(r).__name__ for r in roots),
                changes=_errors.format_paths(found),
            )
        )
    return True


def _checking_is_current(self) -> bool:
    return _FAST_IS_CURRENT(self) and (not self._roots or verify(self))


def _set(depth: int) -> None:
    _DEPTH[0] = depth
    on = depth > 0
    _graph.CHECK[0] = verify if on else None
    _flatgraph.FlatGraph.is_current = _checking_is_current if on else _FAST_IS_CURRENT


@contextlib.contextmanager
def check_structure() -> Iterator[None]:
    """Verify every cached structure against a fresh walk inside the block.

    The same as running with ``RAMIE_CHECK_STRUCTURE=1``, for one block (in
    every thread). Nested blocks are fine.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, check_structure, state
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.ws = [Param(jnp.ones(2))]
    >>> m = M(); _ = state(m)
    >>> list.append(m.ws, Param(jnp.ones(3)))  # bypasses tracking on purpose
    >>> with check_structure():
    ...     state(m)
    Traceback (most recent call last):
    ...
    ramie.core._errors.StaleStructureError: RAMIE_CHECK_STRUCTURE: the cached structure of M ...
    """
    with _LOCK:
        _set(_DEPTH[0] + 1)
    try:
        yield
    finally:
        with _LOCK:
            _set(_DEPTH[0] - 1)


def enabled() -> bool:
    """Whether verify mode is on (environment variable or ``check_structure``)."""
    return _DEPTH[0] > 0


if os.environ.get("RAMIE_CHECK_STRUCTURE", "").strip() not in ("", "0"):
    _set(1)
