"""``custom_vjp``: a user-defined backward pass for a function of ramie objects."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax

from ramie import core
from ramie.core import extend

from . import _errors
from . import _graphargs as ga
from ._autodiff import _DiffCall, _join


class custom_vjp:  # noqa: N801 - named like jax.custom_vjp
    """``jax.custom_vjp`` for functions whose arguments may be ramie objects.

    ``fwd(*args)`` returns ``(out, residuals)``; ``bwd(residuals, g)`` returns
    one cotangent per argument not in ``nondiff_argnums``: for an object, a
    ``State`` holding the cotangent of each of its ``Param`` leaves (the
    state ``grad`` differentiates), for anything else what JAX expects.
    Objects are rebuilt read-only inside ``fun``/``fwd``/``bwd``: mutations made
    there are not written back.

    >>> import jax, jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import custom_vjp, grad
    >>> class Scale(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.array(3.0))
    >>> @custom_vjp
    ... def apply(m, x):
    ...     return m.w.value * x
    >>> def fwd(m, x):
    ...     return apply(m, x), (m.w.value, x)
    >>> def bwd(res, g):
    ...     w, x = res
    ...     return core.State({"w": core.Param(10 * g * x)}), g * w  # a scaled gradient
    >>> apply.defvjp(fwd, bwd)
    >>> float(grad(lambda m: apply(m, 2.0))(Scale())["w"].value)
    20.0

    Without ``fun`` it returns a decorator: ``@custom_vjp(nondiff_argnums=(1,))``.
    """

    def __new__(cls, fun: Callable | None = None, nondiff_argnums: Sequence[int] = ()):
        if fun is None:
            return functools.partial(cls, nondiff_argnums=nondiff_argnums)
        return super().__new__(cls)

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        """Set the forward (``(out, residuals)``) and backward functions."""
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args: Any) -> Any:
        if self.fwd is None or self.bwd is None:
            raise _errors.TransformArgumentError(
                _errors.CUSTOM_VJP_UNDEFINED.format(name=self.__name__)
            )
        argnums = tuple(i for i in range(len(args)) if i not in self.nondiff_argnums)
        call = _DiffCall("custom_vjp", args, {}, argnums, core.Param)
        diff, kept = call.split()
        graphdef, spec = call.ex.fg.graphdef, call.ex.spec

        def args_of(d: ga.Leaves, k: ga.Leaves):
            values = _join(call.vmask, d.values, k.values)
            leaves = _join(call.lmask, d.leaves, k.leaves)
            with extend.transform_frame("custom_vjp") as frame:
                objs = ga.enter(frame, graphdef, values)
            args, _ = ga.rebuild(spec, objs, leaves)  # (args, kwargs): no kwargs here
            return args

        @jax.custom_vjp
        def pure(d, k):
            return self.fun(*args_of(d, k))

        def fwd(d, k):
            return self.fwd(*args_of(d, k))

        def bwd(residuals, g):
            cts = self.bwd(residuals, g)
            if not isinstance(cts, tuple) or len(cts) != len(argnums):
                raise _errors.TransformArgumentError(
                    _errors.CUSTOM_VJP_BWD.format(
                        name=self.__name__, count=len(argnums), found=_describe(cts)
                    )
                )
            return _cotangent_leaves(call, argnums, cts), None

        pure.defvjp(fwd, bwd)
        return pure(diff, kept)


def _describe(x: Any) -> str:
    return f"a tuple of {len(x)}" if isinstance(x, tuple) else f"a {type(x).__name__}"


def _cotangent_leaves(call: _DiffCall, argnums: tuple, cts: tuple):
    return call.diff_values(dict(zip(argnums, cts, strict=True)), _errors.CUSTOM_VJP_MISSING)
