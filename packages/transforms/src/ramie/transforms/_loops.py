"""fori_loop and while_loop whose loop value may hold ramie objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from . import _errors
from . import _graphargs as ga
from ._scan import aval_changes, carry_leaves


class _Loop:
    """The loop value ``val`` split into object leaves and plain leaves, both carried."""

    def __init__(self, name: str, init_val: Any):
        self.name = name
        self.ex = ga.Extracted(((init_val,), {}))
        self.template = jax.tree_util.tree_structure(ga.as_exported(init_val, self.ex.objs))
        names = ga.object_names(self.ex.spec, len(self.ex.objs))
        self.labels = [
            "/".join([names[p[0]].replace("args[0]", "val"), *map(str, p[1:])])
            for p in self.ex.fg.paths
        ] + [
            "val" + jax.tree_util.keystr(path)
            for path, x in jax.tree_util.tree_flatten_with_path(init_val, is_leaf=ga.is_graph)[0]
            if not isinstance(x, ga.GRAPH_TYPES)
        ]

    def init(self) -> tuple:
        return (self.ex.fg.values(), self.ex.leaves)

    def step(self, fun: Callable, carry: tuple) -> tuple:
        """Run ``fun(val)`` on objects rebuilt from ``carry``; the next carry."""
        values, leaves = carry
        fg = self.ex.fg
        new_graphdef, new_values, _, payload = ga.call_traced(
            self.name, fun, fg.graphdef, self.ex.spec, values, leaves
        )
        if new_graphdef is not None:
            raise _errors.StructureChangedError(_errors.SCAN_NEW_STATE.replace("scan", self.name))
        new_leaves = carry_leaves(payload, self.template, self.name)
        changed = aval_changes(self.labels, [*values, *leaves], [*new_values, *new_leaves])
        if changed:
            raise _errors.CarryError(
                _errors.CARRY_CHANGED.format(transform=self.name, changes="\n".join(changed))
            )
        return (new_values, new_leaves)

    def peek(self, fun: Callable, carry: tuple) -> Any:
        """``fun(val)`` on objects rebuilt from ``carry``, without keeping mutations."""
        values, leaves = carry
        fg = self.ex.fg
        return ga.call_traced(self.name, fun, fg.graphdef, self.ex.spec, values, leaves)[3]

    def finish(self, carry: tuple) -> Any:
        values, leaves = carry
        self.ex.fg.set_values(values)
        return ga.import_(ga.HAS_OBJECTS, self.template.unflatten(leaves), self.ex.objs)


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
    carry = jax.lax.fori_loop(
        lower, upper, lambda i, c: loop.step(lambda v: body_fun(i, v), c), loop.init(), **kwargs
    )
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
    carry = jax.lax.while_loop(
        lambda c: loop.peek(cond_fun, c), lambda c: loop.step(body_fun, c), loop.init()
    )
    return loop.finish(carry)
