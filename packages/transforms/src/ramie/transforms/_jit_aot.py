"""Ahead-of-time stages of a jitted function: ``.trace``, ``.lower``, ``.eval_shape``.

``jit(f).lower(*args)`` lowers ``f`` for arguments that may be ramie objects,
as ``jax.jit(f).lower`` does for arrays. The stages are JAX's own
(``jax.stages.Traced``, ``Lowered``, ``Compiled``) behind thin wrappers whose
only job is to take ramie objects where JAX takes pytrees: a compiled function
is called with the same kind of arguments as the jitted one, and writes the
mutations back into them. Everything else (``as_text()``, ``cost_analysis()``,
``jaxpr``, ``out_info``...) is JAX's, passed through.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from . import _errors
from . import _graphargs as ga


def with_stages(call: Callable) -> Callable:
    """Give the function ``jit`` returns its ``trace``/``lower``/``eval_shape`` methods."""
    call.trace = lambda *args, **kwargs: trace(call, *args, **kwargs)
    call.lower = lambda *args, **kwargs: lower(call, *args, **kwargs)
    call.eval_shape = lambda *args, **kwargs: eval_shape(call, *args, **kwargs)
    return call


def _prepared(call: Callable, args: tuple, kwargs: dict) -> tuple:
    """``(jitted, layout, fg, objs, inputs)``: a call taken apart as ``_Jitted`` runs it."""
    jitted = call._ramie_jit
    layout, fg, objs, values, leaves = jitted.general_layout(args, kwargs)
    return jitted, layout, fg, objs, _inputs(layout, values, leaves)


def _inputs(layout: Any, values: list, leaves: list) -> tuple:
    """The positional arguments of ``layout.jitted`` (donated inputs apart, if any)."""
    from ._jit import _DONATE_MIXED, _partition  # (here: _jit imports this module)

    if layout.mode != _DONATE_MIXED:
        return (values, leaves)

    return _partition(layout.dmask, values, leaves)


class Traced:
    """``jit(f).trace(*args)``: JAX's ``Traced`` stage, ``lower()`` giving a ``Lowered``."""

    def __init__(self, call: Callable, layout: Any, stage: Any):
        self._call, self._layout, self._stage = call, layout, stage

    def lower(self, **kwargs: Any) -> Lowered:
        return Lowered(self._call, self._layout, self._stage.lower(**kwargs))

    def __getattr__(self, name: str) -> Any:  # jaxpr, out_info, fun_name, ...
        return getattr(self._stage, name)


class Lowered:
    """``jit(f).lower(*args)``: JAX's ``Lowered`` stage, ``compile()`` giving a ``Compiled``."""

    def __init__(self, call: Callable, layout: Any, stage: Any):
        self._call, self._layout, self._stage = call, layout, stage

    def compile(self, **kwargs: Any) -> Compiled:
        return Compiled(self._call, self._layout, self._stage.compile(**kwargs))

    def __getattr__(self, name: str) -> Any:  # as_text, cost_analysis, compiler_ir, ...
        return getattr(self._stage, name)


class Compiled:
    """A compiled jitted function: call it like the jitted one; mutations are written back.

    It only accepts arguments of the structure it was lowered for (the same
    objects' structure, static values and donation); anything else raises
    ``TransformArgumentError`` (call the jitted function itself, which compiles
    again as needed).
    """

    def __init__(self, call: Callable, layout: Any, stage: Any):
        self._call, self._layout, self._stage = call, layout, stage

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        jitted, layout, fg, objs, inputs = _prepared(self._call, args, kwargs)
        if _key(layout) != _key(self._layout):
            raise _errors.TransformArgumentError(
                _errors.COMPILED_OTHER_STRUCTURE.format(name=_name(self._call))
            )
        changed, payload = self._stage(*inputs)
        return jitted._finish(changed, payload, fg, objs)

    def __getattr__(self, name: str) -> Any:  # as_text, cost_analysis, memory_analysis, ...
        return getattr(self._stage, name)


def _key(layout: Any) -> tuple:
    """What makes two layouts the same compiled function (interning may have made two)."""
    return (layout.graphdef, layout.spec, layout.statics, layout.dmask)


def _name(call: Callable) -> str:
    return getattr(call, "__qualname__", None) or repr(call)


def trace(call: Callable, *args: Any, **kwargs: Any) -> Traced:
    """Trace the jitted ``call`` for these arguments (objects untouched).

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import jit
    >>> class Scale(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.array(2.0))
    >>> f = jit(lambda m, x: m.w.value * x)
    >>> f.trace(Scale(), jnp.ones(3)).jaxpr.out_avals
    [ShapedArray(float32[3])]
    """
    _, layout, _, _, inputs = _prepared(call, args, kwargs)
    return Traced(call, layout, layout.jitted.trace(*inputs))


def lower(call: Callable, *args: Any, **kwargs: Any) -> Lowered:
    """Lower the jitted ``call`` for these arguments; ``.compile()`` it to run it.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import jit
    >>> class Count(core.Module):
    ...     def __init__(self):
    ...         self.n = core.Variable(jnp.array(0))
    >>> @jit
    ... def tick(c):
    ...     c.n.value += 1
    >>> c = Count()
    >>> compiled = tick.lower(c).compile()
    >>> compiled(c); compiled(c)
    >>> int(c.n.value)
    2
    """
    _, layout, _, _, inputs = _prepared(call, args, kwargs)
    return Lowered(call, layout, layout.jitted.lower(*inputs))


def eval_shape(call: Callable, *args: Any, **kwargs: Any) -> Any:
    """The shapes and dtypes ``call`` would return (objects untouched, nothing computed).

    Objects it creates come back with ``jax.ShapeDtypeStruct`` leaves.

    >>> import jax, jax.numpy as jnp
    >>> from ramie.transforms import jit
    >>> jit(lambda x: jnp.outer(x, x)).eval_shape(jnp.ones(3))
    ShapeDtypeStruct(shape=(3, 3), dtype=float32)
    """
    _, layout, _, objs, inputs = _prepared(call, args, kwargs)
    from ._jit import Restructured

    _, payload = layout.jitted.eval_shape(*inputs)
    if type(payload) is not Restructured:
        return payload
    return ga.import_(payload.meta, payload.payload, objs)


def jit_partial(fun: Callable, *partial_args: Any, **jit_options: Any) -> Callable:
    """``jit(fun, **jit_options)`` with its first arguments bound to ``partial_args``.

    Flax NNX offers this to avoid walking the bound objects' graph on every
    call. ramie's ``jit`` already caches that walk (a call costs about what
    ``jax.jit`` costs), so this is a thin convenience: ``cached_partial(jit(fun), *args)``.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import jit_partial
    >>> class Count(core.Module):
    ...     def __init__(self):
    ...         self.n = core.Variable(jnp.array(0))
    >>> def add(c, k):
    ...     c.n.value += k
    >>> c = Count()
    >>> step = jit_partial(add, c)
    >>> step(2); step(3)
    >>> int(c.n.value)
    5
    """
    from ._jit import jit

    return cached_partial(jit(fun, **jit_options), *partial_args)


def cached_partial(fun: Callable, *cached_args: Any) -> Callable:
    """``fun`` with its first arguments bound to ``cached_args`` (objects by reference).

    In Flax NNX this caches the graph traversal of the bound objects for a
    transformed function. ramie's transforms already cache it per call site,
    so this is ``functools.partial`` with the wrapped function's name and
    docstring: mutations made through it still reach the bound objects.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import cached_partial, jit
    >>> class Count(core.Module):
    ...     def __init__(self):
    ...         self.n = core.Variable(jnp.array(0))
    >>> @jit
    ... def add(c, k):
    ...     c.n.value += k
    ...     return c.n.value
    >>> c = Count()
    >>> step = cached_partial(add, c)
    >>> int(step(4)), int(c.n.value)
    (4, 4)
    """
    bound = functools.partial(fun, *cached_args)
    functools.update_wrapper(bound, fun)
    return bound
