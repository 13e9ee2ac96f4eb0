"""A transform's per-call fast path over a FlatGraph, in one Python frame.

A jitted training step is called with the same objects on every step. Per
call it must recognise them, hand the compiled call their current leaf values
and write the new values back. Through ``FlatGraph.current_values`` and
``FlatGraph.write_all`` that is three more Python calls per step, and in a
training loop with asynchronous dispatch each costs far more than ``timeit``
says: in turn with the same step done in one frame (tiny MLP, 14 leaves,
Python 3.11, jax 0.10.2, one process, medians of 400 shuffled rounds), they
cost ~1.2% of a 26 µs step, more than half the 2% a step may cost over raw
``jax.jit``.

So ``caller`` builds the whole fast path as one function. It reads the kept
list the way ``FlatGraph._kept`` does and writes the way ``FlatGraph.write_all``
does, inlined (a few lines each, copied once: change them together). Anything
unusual (a graph with raw-array slots, a list of the wrong length, a write
that raced with another thread's) goes through those methods.
``tests/test_fastcall.py`` checks the fast path against the Variables, with
threads.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

from . import _valuecache
from ._containers import _VERSION
from ._flatgraph import _CONSUME, _VALUE_SET

_starmap = itertools.starmap
_draw = _valuecache.draw
_KEEPERS = _valuecache.KEEPERS


class FastCall(NamedTuple):
    """The call that ``caller``'s function recognises, and how to run it.

    Held in a one-item list (``last[0]``) and replaced whole, so a thread
    never sees fields of two different calls.
    """

    same: Callable[[tuple], bool]  # ``same(args)``: the same objects as this call's?
    graph: Callable[[], Any]  # their FlatGraph, or None once gone (a weak reference)
    invoke: Callable[[list, Any], tuple]  # ``invoke(values, rest) -> (new, out)``
    rest: Callable[[tuple], Any]  # picks ``invoke``'s second argument out of the arguments
    extra: Any = None  # the transform's own; ``caller`` passes it to ``other``


_DEAD = weakref.ref(type("_Dead", (), {})())  # a reference that gives None
#: A ``FastCall`` that no arguments match: ``last[0]`` before the first call.
NO_CALL = FastCall(same=lambda args: False, graph=_DEAD, invoke=None, rest=None)


def caller(
    last: list,
    slow: Callable[[tuple, dict], Any],
    other: Callable[[Any, Any, Any, Any, tuple], Any],
    retry: tuple[type[BaseException], ...] = (TypeError,),
) -> Callable[..., Any]:
    """The per-call function of a transform: the fast path for ``last[0]``, else ``slow``.

    ``call(*args, **kwargs)`` with no keyword arguments, where
    ``last[0].same(args)``, the FlatGraph is alive and no structure changed
    since its walk, runs ``new, out = invoke(values, rest(args))``, with
    ``values`` the graph's current leaf values (its kept list while true:
    pass it on, never change it), then:

    - ``new`` a list: the new value of every leaf, written back and kept
      (handed over: never change it afterwards); returns ``out``;
    - ``new`` None: nothing to write; returns ``out``;
    - anything else: returns ``other(extra, fg, new, out, args)``, ``fg`` the
      FlatGraph (for ``jit``: a ``Written`` of some leaves, or a result
      whose structure changed).

    Everything else, and an exception of a ``retry`` type raised by ``invoke``
    (JAX refusing an argument before running anything), returns
    ``slow(args, kwargs)``. The transform keeps ``last[0]`` up to date.

    >>> import jax, jax.numpy as jnp, weakref
    >>> from ramie.core import Module, Param, extend
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.zeros(2))
    >>> m = M()
    >>> step = jax.jit(lambda values, k: ([values[0] + k], values[0].sum()))
    >>> last = [extend.FastCall(
    ...     same=lambda args: args[0] is m, graph=weakref.ref(extend.flatten(m)),
    ...     invoke=step, rest=lambda args: args[1])]
    >>> call = extend.fast_caller(last, slow=None, other=None)
    >>> out = call(m, 1.0)
    >>> out = call(m, 1.0)
    >>> m.w.value.tolist(), float(out)
    ([2.0, 2.0], 2.0)
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        same, graph, invoke, rest, extra = last[0]
        if same(args) and not kwargs:
            fg = graph()
            if fg is not None and fg.version == _VERSION[0]:
                # FlatGraph._kept(), inlined (its order: ticket, then stamp, then list)
                values = fg._cache
                if values is not None:
                    ticket = _draw()
                    stamp = fg._stamp
                    values = fg._cache
                    if values is not None and ticket == stamp + 1:
                        fg._stamp = ticket
                    else:
                        fg._cache = values = None
                try:
                    new, out = invoke(fg._read() if values is None else values, rest(args))
                except retry:
                    pass  # nothing ran: the slow path sorts the arguments out
                else:
                    if type(new) is not list:
                        return out if new is None else other(extra, fg, new, out, args)
                    refs = fg.refs
                    if len(new) != len(refs) or not fg._all_variables:
                        fg.write_all(new)  # refuses the wrong length, writes raw slots
                        return out
                    # FlatGraph.write_all's common case, inlined (see there)
                    first = _draw()
                    try:
                        _CONSUME(_starmap(_VALUE_SET, zip(refs, new)))  # noqa: B905 - same length
                    except BaseException:
                        fg._keep(None, _draw())
                        raise
                    stamp = _draw()
                    if stamp == first + 1 and fg._cache is not None and len(_KEEPERS) == 1:
                        fg._cache = new  # the list before the stamp (see FlatGraph._kept)
                        fg._stamp = stamp
                    else:
                        fg._keep(new if stamp == first + 1 else None, stamp)
                    return out
        return slow(args, kwargs)

    return call
