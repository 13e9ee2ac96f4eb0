"""Warnings for Variables a compiled function reads from its enclosing scope.

A function compiled by ``nn.jit`` that reads a Variable it did not receive
(through its arguments) gets that Variable's value at trace time baked in as
a constant: later changes to the Variable are not seen. ``closure_read_hook``
makes the ``on_read`` callback a compiling transform passes to
``transform_frame``: it warns once per function, naming the Variable and,
when it can be found, its path in the captured object.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any

from . import _errors
from ._graph import walk
from ._module import Module
from ._variables import Variable


class ClosureReadWarning(UserWarning):
    """A compiled function read a captured Variable: its value is frozen into the function."""


def _captured_values(fun: Any):
    """(name, value) of the objects ``fun`` can see from outside: closure cells, globals."""
    seen = set()
    while fun is not None and id(fun) not in seen:
        seen.add(id(fun))
        owner = getattr(fun, "__self__", None)
        if isinstance(owner, (Module, Variable)):
            yield "self", owner
        code = getattr(fun, "__code__", None)
        if code is not None:
            for name, cell in zip(code.co_freevars, fun.__closure__ or (), strict=False):
                try:
                    yield name, cell.cell_contents
                except ValueError:  # an empty cell
                    pass
            g = getattr(fun, "__globals__", {})
            for name in code.co_names:
                if name in g:
                    yield name, g[name]
        fun = getattr(fun, "__wrapped__", None) or getattr(fun, "func", None)


def _path_of(fun: Any, variable: Variable) -> str:
    for name, value in _captured_values(fun):
        if value is variable:
            return f" (the captured `{name}`)"
        if isinstance(value, Module):
            try:
                fg = walk(value)
            except _errors.RamieError:
                continue
            for path, ref in zip(fg.paths, fg.refs, strict=True):
                if ref is variable:
                    return f" ('{_errors.format_path(path)}' of the captured `{name}`)"
    return ""


def closure_read_hook(fun: Callable, transform: str) -> Callable[[Variable], None]:
    """An ``on_read`` callback for ``transform_frame`` that warns once for ``fun``.

    >>> import warnings, jax.numpy as jnp
    >>> from ramie.core import Param
    >>> from ramie.core.extend import closure_read_hook, transform_frame
    >>> scale = Param(jnp.ones(()))
    >>> def f(x):
    ...     return x * scale.value
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     with transform_frame("jit", closure_read_hook(f, "jit")):
    ...         _ = f(1.0); _ = f(2.0)
    >>> len(seen), "(the captured `scale`)" in str(seen[0].message)
    (1, True)
    """
    warned = threading.Event()

    def on_read(variable: Variable) -> None:
        if warned.is_set():
            return
        warned.set()
        value = variable._value
        shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
        found = f"{dtype}{list(shape)}" if shape is not None else f"{value!r:.40}"
        warnings.warn(
            _errors.CLOSURE_READ.format(
                transform=transform,
                fn=getattr(fun, "__qualname__", repr(fun)),
                kind=type(variable).__name__,
                found=found,
                where=_path_of(fun, variable),
            ),
            ClosureReadWarning,
            stacklevel=4,
        )

    return on_read
