"""remat, cond, switch and eval_shape for functions of ramie objects."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax

from . import _cache, _errors
from . import _graphargs as ga


def remat(
    fun: Callable | None = None,
    *,
    prevent_cse: bool = True,
    policy: Callable[..., bool] | None = None,
) -> Any:
    """``jax.checkpoint`` (rematerialisation) for functions of ramie objects.

    The forward activations of ``fun`` are recomputed in the backward pass
    instead of stored; ``policy`` (e.g. ``jax.checkpoint_policies.
    dots_saveable``) chooses what may be saved. Mutations are written back.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import grad, remat
    >>> class Scale(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.array(3.0))
    ...     @remat
    ...     def __call__(self, x):
    ...         return jnp.sin(self.w.value * x)
    >>> g = grad(lambda m: m(1.0))(Scale())
    >>> round(float(g["w"].value), 4)  # cos(3)
    -0.99
    """
    if fun is None:
        return functools.partial(remat, prevent_cse=prevent_cse, policy=policy)

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return ga.apply(
            "remat",
            fun,
            args,
            kwargs,
            lambda pure: jax.checkpoint(pure, prevent_cse=prevent_cse, policy=policy),
        )

    return wrapper


def cond(pred: Any, true_fun: Callable, false_fun: Callable, *operands: Any) -> Any:
    """``jax.lax.cond`` whose operands may be ramie objects; both branches may mutate them.

    Both branches must leave the objects with the same structure and return
    outputs of the same structure (as in JAX).

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import cond
    >>> class Count(core.Module):
    ...     def __init__(self):
    ...         self.n = core.Variable(jnp.array(0))
    >>> def up(c):
    ...     c.n.value += 1
    >>> def down(c):
    ...     c.n.value -= 1
    >>> c = Count()
    >>> cond(True, up, down, c); cond(True, up, down, c); cond(False, up, down, c)
    >>> int(c.n.value)
    1
    """
    return switch(jax.numpy.asarray(pred, dtype=jax.numpy.int32), (false_fun, true_fun), *operands)


def switch(index: Any, branches: Sequence[Callable], *operands: Any) -> Any:
    """``jax.lax.switch`` whose operands may be ramie objects (see ``cond``).

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import switch
    >>> class Box(core.Module):
    ...     def __init__(self):
    ...         self.x = core.Variable(jnp.array(1.0))
    >>> b = Box()
    >>> def double(b):
    ...     b.x.value *= 2
    >>> def negate(b):
    ...     b.x.value = -b.x.value
    >>> switch(1, [double, negate], b); switch(0, [double, negate], b)
    >>> float(b.x.value)
    -2.0
    """
    ex = ga.Extracted((operands, {}))
    fg = ex.fg
    name = "switch" if len(branches) > 2 else "cond"
    static = (name, fg.graphdef, ex.spec)
    pures, structures = _cache.traced_body(
        tuple(branches), static, lambda refs: _branches(refs, *static)
    )
    try:
        traced = jax.lax.switch(index, list(pures), fg.values(), ex.leaves)
    except TypeError as e:
        differing = {k: g for k, g in structures.items() if g is not None}
        if not differing:
            raise
        names = ga.object_names(ex.spec, len(ex.objs))
        lines = [
            f"branch {k}: " + line
            for k, g in differing.items()
            for line in ga.describe_changes(fg.graphdef, g, names)
        ]
        raise _errors.StructureChangedError(
            _errors.BRANCH_STRUCTURE.format(transform=name, changes=_errors.bullets(lines))
        ) from e
    ga.propagate(fg, ex.objs, traced.graphdef, traced.values)
    return ga.import_(traced.meta, traced.payload, ex.objs)


def _branches(refs: tuple, name: str, graphdef: Any, spec: tuple) -> tuple:
    """The pure branch functions ``jax.lax.switch`` traces, and the structures they left."""
    structures: dict[int, Any] = {}

    def branch(k: int, ref: Callable) -> Callable:
        def pure(values, leaves):
            traced = ga.call_traced(name, ref(), graphdef, spec, values, leaves)
            structures[k] = traced.graphdef
            return traced

        return pure

    return tuple(branch(k, r) for k, r in enumerate(refs)), structures


def eval_shape(fun: Callable, *args: Any, **kwargs: Any) -> Any:
    """Run ``fun`` abstractly: shapes and dtypes only, no FLOPs, no memory.

    Objects created by ``fun`` come back with ``jax.ShapeDtypeStruct`` leaves,
    which is how to build a model abstractly (e.g. to restore a checkpoint
    into it). Input objects are left untouched.

    >>> import jax, jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import eval_shape
    >>> class Big(core.Module):
    ...     def __init__(self, rngs):
    ...         self.w = core.Param(jax.random.normal(rngs.params(), (4096, 4096)))
    >>> big = eval_shape(lambda: Big(core.Rngs(0)))
    >>> big.w.value
    ShapeDtypeStruct(shape=(4096, 4096), dtype=float32)
    """
    ex = ga.Extracted((args, kwargs))
    fg = ex.fg

    def pure(values, leaves):
        return ga.call_traced("eval_shape", fun, fg.graphdef, ex.spec, values, leaves)

    traced = jax.eval_shape(pure, fg.values(), ex.leaves)
    return ga.import_(traced.meta, traced.payload, ex.objs)
