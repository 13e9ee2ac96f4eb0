"""A pure-function view of a Module: ``f(state, *args) -> (out, new_state)``.

Code that is pure JAX (custom training loops, other libraries, ``jax.lax``)
can use a ramie model without objects: the model becomes a function of its
State, in the style ``f(v_in, x) -> (y, v_out)``.
"""

from __future__ import annotations

from typing import Any

from ._api import merge, split
from ._flatgraph import GraphDef
from ._state import State


class Functional:
    """A pure, jit/vmap/grad-able function of a Module's state.

    ``f(state, *args, method="__call__", **kwargs)`` merges a fresh copy of the
    module from ``state``, calls ``method`` on it and returns
    ``(output, new_state)``; nothing outside is mutated. ``f.state`` is the
    state the module had when ``functional`` was called.

    >>> import jax, jax.numpy as jnp
    >>> from ramie.core import Module, Param, Variable, functional
    >>> class Count(Variable): pass
    >>> class Scale(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.full((2,), 3.0))
    ...         self.calls = Count(jnp.array(0))
    ...     def __call__(self, x):
    ...         self.calls += 1
    ...         return x * self.w
    >>> f = functional(Scale())
    >>> y, new_state = jax.jit(f)(f.state, jnp.ones(2))
    >>> float(y[0]), int(new_state.calls.value), int(f.state.calls.value)
    (3.0, 1, 0)
    """

    def __init__(self, graphdef: GraphDef, state: State):
        self.graphdef = graphdef
        self.state = state

    def __call__(
        self, state: State, *args: Any, method: str = "__call__", **kwargs: Any
    ) -> tuple[Any, State]:
        obj = merge(self.graphdef, state)
        out = getattr(obj, method)(*args, **kwargs)
        _, new_state = split(obj)
        return out, new_state

    def apply(self, method: str) -> Any:
        """A pure function ``(state, *args, **kwargs) -> (out, new_state)`` for ``method``."""

        def call(state: State, *args: Any, **kwargs: Any) -> tuple[Any, State]:
            return self(state, *args, method=method, **kwargs)

        return call

    def build(self, state: State | None = None) -> Any:
        """A new object built from ``state`` (default: the initial state)."""
        return merge(self.graphdef, self.state if state is None else state)

    def __repr__(self) -> str:
        return f"Functional({type(self.build()).__name__}, {len(self.graphdef.paths)} leaves)"


def functional(obj: Any) -> Functional:
    """Turn ``obj`` (a Module) into a pure function of its state; see ``Functional``."""
    graphdef, state = split(obj)
    return Functional(graphdef, state)
