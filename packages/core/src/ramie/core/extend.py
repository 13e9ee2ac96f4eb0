"""``ramie.core.extend``: the seam for writing transforms over ramie objects.

A transform that takes Modules and Variables (``ramie.transforms`` is built
only on this module, and yours can be too) moves them across a JAX
transformation in three steps:

1. **flatten** the argument objects: ``fg = flatten(objs)`` gives their joint
   structure ``fg.graphdef`` (hashable: a static argument or cache key) and
   their leaves ``fg.values()`` (arrays), in ``fg.paths`` order. It is cached
   per root object until a structural change, so a call costs a lookup;
2. inside the JAX transformation, open a ``transform_frame``, rebuild new
   objects from the traced leaves with ``unflatten(graphdef, values)``, mark
   their Variables as owned by the frame (``frame.own(flatten(objs).refs)``;
   a traced value written into a Variable the frame does not own is a
   captured mutation, refused with ``CapturedMutationError``), run the user's
   function and read the new leaves with ``flatten(objs).values()``;
3. outside, **write back** the results into the caller's objects with
   ``fg.set_values(new_values)``.

A ``FlatGraph`` offers, for that: ``graphdef``, ``paths`` (one key path per
leaf, the first key the index of the root object when flattening a tuple),
``refs`` (per leaf, the Variable, or a slot for a raw array attribute: read it
with ``leaf(ref)``), ``values()``, ``set_values(values, positions=None)``,
``write_at(positions, values)`` (the same for a ``positions`` tuple that recurs:
its leaves are looked up once), ``write_all(values)`` (``set_values`` that keeps
the list it is handed as the graph's values: never change it afterwards),
``is_current()`` (False once any structure changed since the walk) and
``current_values()`` (``values()`` for a per-call fast path, or None once the
structure changed: the list may be shared, so pass it on and never change it. A
graph keeps the list it last read or wrote and hands it out until any Variable's
value is written elsewhere, so a step that reads and writes the same leaves every
call reads none from the Variables).

A transform called again and again with the same objects (like ``jit``) can
skip the walk and the method calls: ``fast_caller(last, slow, other)`` builds its
per-call function, which runs the call described by ``last[0]`` (a ``FastCall``:
how to recognise the objects, their FlatGraph, the compiled call) in one Python
frame, with the read of the kept list and the write-back inlined, and calls
``slow(args, kwargs)`` for anything else. ``NO_FAST_CALL`` matches no call.

A transform that compiles (like ``jit``) can pass ``closure_read_hook(fun, name)``
as ``transform_frame``'s ``on_read``: it warns once per function when the
function reads a Variable it was not given (its value is frozen into the
compiled code).

Caches a transform keeps should be bounded and hold user objects weakly;
``register_cache(cache)`` lets ``ramie.core.clear_caches()`` empty them too.

A complete (if minimal) ``jit`` for functions of one object:

>>> import jax, jax.numpy as jnp
>>> from ramie import core
>>> from ramie.core import extend
>>> def tiny_jit(fun):
...     def pure(graphdef, values):
...         with extend.transform_frame("tiny_jit") as frame:
...             obj = extend.unflatten(graphdef, values)
...             frame.own(extend.flatten(obj).refs)
...             out = fun(obj)
...             return extend.flatten(obj).values(), out
...     compiled = jax.jit(pure, static_argnums=0)
...     def call(obj):
...         fg = extend.flatten(obj)
...         new_values, out = compiled(fg.graphdef, fg.values())
...         fg.set_values(new_values)
...         return out
...     return call
>>> class Counter(core.Module):
...     def __init__(self):
...         self.n = core.Variable(jnp.array(0))
>>> @tiny_jit
... def tick(c):
...     c.n.value += 1
...     return c.n.value * 10
>>> c = Counter()
>>> int(tick(c)), int(tick(c)), int(c.n.value)
(10, 20, 2)
"""

from __future__ import annotations

from typing import Any

from ._caches import register_external as _register_external
from ._capture import closure_read_hook
from ._containers import version as structure_version
from ._fastcall import NO_CALL as _NO_CALL
from ._fastcall import FastCall
from ._fastcall import caller as fast_caller
from ._flatgraph import FlatGraph, GraphDef
from ._frames import Frame, current_frame, transform_frame
from ._graph import flatten, unflatten
from ._sharding import SHARDING_KEYS as _SHARDING_KEYS
from ._variables import Variable

__all__ = [
    "NO_FAST_CALL",
    "SHARDING_KEYS",
    "FastCall",
    "FlatGraph",
    "Frame",
    "GraphDef",
    "closure_read_hook",
    "current_frame",
    "fast_caller",
    "flatten",
    "leaf",
    "register_cache",
    "structure_version",
    "transform_frame",
    "unflatten",
]

#: The Variable metadata keys that may hold logical axis names (one per array axis),
#: in the order ``ramie.core.sharding_names`` reads them: Flax NNX 0.12's
#: ``sharding_names``, then the spellings read as aliases. A transform that adds an
#: axis (``vmap``/``scan`` with ``transform_metadata``) updates the key found first.
SHARDING_KEYS = _SHARDING_KEYS

#: The ``FastCall`` that no arguments match: what a transform keeps in ``last[0]``
#: for ``fast_caller`` before its first call, and after the objects it held died.
NO_FAST_CALL = _NO_CALL


def leaf(ref: Any) -> Any:
    """What a filter sees at a leaf of ``FlatGraph.refs``: the Variable, or the raw value.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.core import extend
    >>> class M(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.ones(2))
    ...         self.raw = jnp.zeros(3)  # a raw array attribute
    >>> m = M()  # a FlatGraph holds raw-array containers weakly: keep the object
    >>> fg = extend.flatten(m)
    >>> [type(extend.leaf(r)).__name__ for r in fg.refs], fg.paths
    (['Param', 'ArrayImpl'], (('w',), ('raw',)))
    """
    return ref if isinstance(ref, Variable) else ref._value


def register_cache(cache: Any) -> None:
    """Have ``ramie.core.clear_caches()`` call ``cache.clear()`` too (held weakly).

    >>> from ramie import core
    >>> from ramie.core import extend
    >>> class MyCache(dict):
    ...     pass
    >>> mine = MyCache(a=1)
    >>> extend.register_cache(mine)
    >>> core.clear_caches()
    >>> mine
    {}
    """
    _register_external(cache)
