"""fori_loop and while_loop whose loop value may hold ramie objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from . import _cache, _errors
from . import _graphargs as ga
from ._scan import aval_changes, carry_leaves


class _LoopStatic(NamedTuple):
    """What a loop body depends on besides the user's functions (hashable)."""

    name: str
    graphdef: Any
    spec: tuple
    template: Any
    labels: tuple


def _step(st: _LoopStatic, fun: Callable, carry: tuple) -> tuple:
    """Run ``fun(val)`` on objects rebuilt from ``carry``; the next carry."""
    values, leaves = carry
    traced = ga.call_traced(st.name, fun, st.graphdef, st.spec, values, leaves)
    if traced.graphdef is not None:
        raise _errors.StructureChangedError(_errors.SCAN_NEW_STATE.replace("scan", st.name))
    new_values = traced.values
    new_leaves = carry_leaves(traced.payload, st.template, st.name)
    changed = aval_changes(st.labels, [*values, *leaves], [*new_values, *new_leaves])
    if changed:
        raise _errors.CarryError(
            _errors.CARRY_CHANGED.format(transform=st.name, changes="\n".join(changed))
        )
    return (new_values, new_leaves)


def _peek(st: _LoopStatic, fun: Callable, carry: tuple) -> Any:
    """``fun(val)`` on objects rebuilt from ``carry``, without keeping mutations."""
    values, leaves = carry
    return ga.call_traced(st.name, fun, st.graphdef, st.spec, values, leaves).payload


class _Loop:
    """The loop value ``val`` split into object leaves and plain leaves, both carried."""

    def __init__(self, name: str, init_val: Any):
        self.ex = ex = ga.Extracted(((init_val,), {}))
        template = jax.tree_util.tree_structure(ga.as_exported(init_val, ex.objs))
        names = [n.replace("args[0]", "val") for n in ga.object_names(ex.spec, len(ex.objs))]
        labels = [ga.path_name(names, p) for p in ex.fg.paths] + [
            "val" + jax.tree_util.keystr(path)
            for path, x in jax.tree_util.tree_flatten_with_path(init_val, is_leaf=ga.is_graph)[0]
            if not isinstance(x, ga.GRAPH_TYPES)
        ]
        self.static = _LoopStatic(name, ex.fg.graphdef, ex.spec, template, tuple(labels))

    def init(self) -> tuple:
        return (self.ex.fg.values(), self.ex.leaves)

    def finish(self, carry: tuple) -> Any:
        values, leaves = carry
        self.ex.fg.set_values(values)
        template = self.static.template
        return ga.import_(ga.HAS_OBJECTS, template.unflatten(leaves), self.ex.objs)


def _fori_body(refs: tuple, st: _LoopStatic) -> Callable:
    (body_ref,) = refs

    def body(i, carry):
        fun = body_ref()
        return _step(st, lambda v: fun(i, v), carry)

    return body


def _while_fns(refs: tuple, st: _LoopStatic) -> tuple:
    cond_ref, body_ref = refs
    return (lambda c: _peek(st, cond_ref(), c)), (lambda c: _step(st, body_ref(), c))


def fori_loop(
    lower: int, upper: int, body_fun: Callable, init_val: Any, *, unroll: int | bool | None = None
) -> Any:
    """``jax.lax.fori_loop`` where ``init_val`` may hold ramie objects.

    ``body_fun(i, val)`` may mutate the objects in ``val`` and must return
    ``val`` with the same structure (the same objects, same shapes).

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import fori_loop
    >>> class Acc(core.Module):
    ...     def __init__(self):
    ...         self.total = core.Variable(jnp.array(0))
    >>> def body(i, acc):
    ...     acc.total.value += i
    ...     return acc
    >>> acc = Acc()
    >>> fori_loop(0, 5, body, acc) is acc, int(acc.total.value)
    (True, 10)
    """
    loop = _Loop("fori_loop", init_val)
    kwargs = {} if unroll is None else {"unroll": unroll}
    body = _cache.traced_body((body_fun,), loop.static, lambda r: _fori_body(r, loop.static))
    carry = jax.lax.fori_loop(lower, upper, body, loop.init(), **kwargs)
    return loop.finish(carry)


def while_loop(cond_fun: Callable, body_fun: Callable, init_val: Any) -> Any:
    """``jax.lax.while_loop`` where ``init_val`` may hold ramie objects.

    ``cond_fun(val)`` reads the objects (its mutations are discarded);
    ``body_fun(val)`` may mutate them and returns ``val``.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import while_loop
    >>> class Box(core.Module):
    ...     def __init__(self):
    ...         self.x = core.Variable(jnp.array(1.0))
    >>> def body(b):
    ...     b.x.value *= 2
    ...     return b
    >>> b = while_loop(lambda b: b.x.value < 100, body, Box())
    >>> float(b.x.value)
    128.0
    """
    loop = _Loop("while_loop", init_val)
    cond, body = _cache.traced_body(
        (cond_fun, body_fun), loop.static, lambda r: _while_fns(r, loop.static)
    )
    carry = jax.lax.while_loop(cond, body, loop.init())
    return loop.finish(carry)
