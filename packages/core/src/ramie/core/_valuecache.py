"""When a FlatGraph may answer ``values()`` from a list it keeps, instead of reading every leaf.

A jitted training step reads every Variable of its arguments before each call
and writes every one back after it. Reading a Variable's value costs ~31 ns
(its class has ``__getattr__``, so CPython cannot specialise the read): ~10 µs
per step for the 339 leaves of a 24-block MLP with adam, ~0.4 µs of a tiny
model's ~30 µs step. So a FlatGraph keeps the list of values it last wrote or
read (``FlatGraph._cache``) and hands it out while it is still true.

It is true while no Variable changed since. Every event that could change one
takes a ticket, ``draw()``, from one global counter (tickets are unique and
increase in the order they are drawn; no lock):

- every write of a Variable's value, anywhere in ramie, draws a ticket *after*
  writing (``written()``): the ``value`` setter, ``v[...] = x``, ``update``.
  ``tests/test_value_cache.py`` checks that no other code in core writes one;
- a FlatGraph reading or writing its own leaves draws one ticket before and
  one after, and keeps the list only if the two are consecutive (no write
  finished in between); it remembers the second (``_stamp``);
- using a kept list draws a ticket too, and the list is used only if that
  ticket follows the stamp: nothing was drawn since, so nothing was written
  since. The new ticket becomes the stamp.

A write that races with a use either draws before the use's ticket (so the
use refuses the list) or after it (so the use is ordered before the write).
A graph stores its list before its stamp, and a use reads its ticket, then the
stamp, then the list, so a current stamp never comes with an older list.
Other graphs' reads and writes also draw tickets; they only cost the next use
a fresh read (two threads stepping two models at once rarely keep a list, and
read their leaves every call, as before this cache).

Memory: a list that can no longer be used would still hold the arrays it had
(after ``update(model, restored)``, the old parameters). So writes also
forget the other graphs' lists (``forget_others``), and a refused list is
dropped. Graphs holding raw-array slots never keep a list (their leaves can
also be written through their containers).
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

draw = itertools.count(1).__next__  # the next ticket (atomic: one C call under the GIL)

# id(graph) -> weak reference, for the graphs that keep a list (for forget_others only).
KEEPERS: dict[int, weakref.ref] = {}


def written() -> None:
    """Call after writing any Variable's value: the kept lists may be stale now.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, extend
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.zeros(2))
    >>> m = M()
    >>> fg = extend.flatten(m)
    >>> fg.current_values() is fg.current_values()  # read once, then kept
    True
    >>> m.w.value = jnp.ones(2)  # the setter calls written(): the kept list is refused
    >>> float(fg.current_values()[0].sum())
    2.0
    """
    draw()
    if KEEPERS:
        forget_others(None)


def keep(fg: Any) -> None:
    """Note that ``fg`` keeps a list, so a later write can forget it."""
    key = id(fg)
    if key not in KEEPERS:
        KEEPERS[key] = weakref.ref(fg, lambda _r: KEEPERS.pop(key, None))


def forget_others(fg: Any) -> None:
    """Drop the kept list of every graph but ``fg`` (None: of every graph)."""
    for key, ref in list(KEEPERS.items()):
        other = ref()
        if other is not fg:
            KEEPERS.pop(key, None)
            if other is not None:
                other._cache = None
