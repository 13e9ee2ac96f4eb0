"""Differentiation of functions of ramie objects: grad, value_and_grad, vjp, jvp, custom_vjp.

Which state is differentiated is chosen by a filter (``wrt``, ``Param`` by
default) applied to the objects among the differentiated arguments; every
other leaf (BatchNorm statistics, RNG counters, ...) is carried along and its
mutations are written back, like under ``jit``. Gradients of an object come
back as a ``State`` holding, at each differentiated path, a Variable of the
same kind whose value is the gradient.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax

from ramie import core

from . import _errors
from . import _graphargs as ga


def _argnums_tuple(argnums: int | Sequence[int]) -> tuple[int, ...]:
    return (argnums,) if isinstance(argnums, int) else tuple(argnums)


class _DiffCall:
    """One call of a differentiated function: which leaves are differentiated, and how."""

    def __init__(self, name: str, args: tuple, kwargs: dict, argnums: tuple, wrt: Any):
        for i in argnums:
            if not -len(args) <= i < len(args):
                raise _errors.TransformArgumentError(
                    _errors.ARGNUMS_RANGE.format(
                        transform=name, argnums=argnums, count=len(args), index=i
                    )
                )
        self.name = name
        self.argnums = tuple(i % len(args) for i in argnums)
        self.ex = ex = ga.Extracted((args, kwargs))
        positions = ga.arg_positions(ex.spec)
        slots = ex.spec[1]
        # Objects (first appearance) and plain leaves, by the argument they came from.
        self.obj_arg = [None] * len(ex.objs)
        leaf_arg = []
        for pos, slot in zip(positions, slots, strict=True):
            if slot >= 0:
                if self.obj_arg[slot] is None:
                    self.obj_arg[slot] = pos
            else:
                leaf_arg.append(pos)
        self.leaf_arg = leaf_arg
        pred = core.to_predicate(wrt)
        fg = ex.fg
        self.vmask = tuple(
            self.obj_arg[p[0]] in self.argnums and pred(p[1:], _as_leaf(r))
            for p, r in zip(fg.paths, fg.refs, strict=True)
        )
        self.lmask = tuple(a in self.argnums for a in leaf_arg)

    def split(self):
        values = self.ex.fg.values()
        leaves = self.ex.leaves
        dv, kv = _split(self.vmask, values)
        dl, kl = _split(self.lmask, leaves)
        return (dv, dl), (kv, kl)

    def traced(self, fun: Callable, has_aux: bool) -> Callable:
        """The pure function of (differentiated, kept) leaves that JAX differentiates."""
        graphdef, spec = self.ex.fg.graphdef, self.ex.spec

        def pure(diff, kept):
            values = _join(self.vmask, diff[0], kept[0])
            leaves = _join(self.lmask, diff[1], kept[1])
            with core.transform_frame(self.name) as frame:
                objs = ga.enter(frame, graphdef, values)
                args, kwargs = ga.rebuild(spec, objs, leaves)
                out = fun(*args, **kwargs)
                new_graphdef, new_values = ga.collect(self.name, graphdef, objs, spec)
                if has_aux:
                    if not (isinstance(out, tuple) and len(out) == 2):
                        raise _errors.TransformArgumentError(
                            _errors.HAS_AUX_OUTPUT.format(
                                transform=self.name, found=type(out).__name__
                            )
                        )
                    out, aux = out
                else:
                    aux = None
                meta, payload = ga.export(aux, objs)
            return out, (new_graphdef, new_values, meta, payload)

        return pure

    def finish(self, extra) -> Any:
        """Write mutations back; return the user's aux output."""
        new_graphdef, new_values, meta, payload = extra
        ga.propagate(self.ex.fg, self.ex.objs, new_graphdef, new_values)
        return ga.import_(meta, payload, self.ex.objs)

    def grads(self, diff_grads) -> Any:
        """Per argnum: a State for an object, the plain gradient for anything else."""
        gv, gl = diff_grads
        fg = self.ex.fg
        by_obj: dict[int, dict] = {}
        it = iter(gv)
        for path, ref, m in zip(fg.paths, fg.refs, self.vmask, strict=True):
            if m:
                g = next(it)
                leaf = ref.replace(g) if isinstance(ref, core.Variable) else g
                by_obj.setdefault(path[0], {})[path[1:]] = leaf
        states = [
            core.State.from_flat_state(by_obj.get(i, {})) if self.obj_arg[i] is not None else None
            for i in range(len(self.ex.objs))
        ]
        leaf_grads = iter(gl)
        out = []
        for argnum in self.argnums:
            out.append(self._arg_grads(argnum, states, leaf_grads))
        return out[0] if len(out) == 1 else tuple(out)

    def _arg_grads(self, argnum, states, leaf_grads):
        treedef, slots = self.ex.spec
        positions = ga.arg_positions(self.ex.spec)
        parts = []
        for pos, slot in zip(positions, slots, strict=True):
            if pos != argnum:
                continue
            parts.append(states[slot] if slot >= 0 else next(leaf_grads))
        arg = self._arg(argnum)
        if isinstance(arg, ga.GRAPH_TYPES):
            return parts[0]
        sub = jax.tree_util.tree_structure(arg, is_leaf=ga.is_graph)
        return sub.unflatten(parts)

    def _arg(self, argnum):
        args, _ = ga.rebuild(self.ex.spec, self.ex.objs, self.ex.leaves)
        return args[argnum]


def _as_leaf(ref):
    return ref if isinstance(ref, core.Variable) else ref._value


def _split(mask, items):
    return (
        [x for x, m in zip(items, mask, strict=True) if m],
        [x for x, m in zip(items, mask, strict=True) if not m],
    )


def _join(mask, chosen, rest):
    a, b = iter(chosen), iter(rest)
    return [next(a) if m else next(b) for m in mask]


def value_and_grad(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    *,
    wrt: core.Filter = core.Param,
    holomorphic: bool = False,
    allow_int: bool = False,
) -> Callable:
    """Like ``jax.value_and_grad``, for functions of ramie objects.

    For an object among ``argnums`` the gradient is a ``State`` of the leaves
    that ``wrt`` selects (``Param`` by default; any filter works). Other
    arguments get plain JAX gradients. Mutations made by ``fun`` (BatchNorm
    statistics, RNG counters, sown Intermediates) are written back.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import value_and_grad
    >>> class Scale(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.array(3.0))
    >>> loss, grads = value_and_grad(lambda m, x: (m.w.value * x) ** 2)(Scale(), 2.0)
    >>> float(loss), float(grads["w"].value)
    (36.0, 24.0)
    """
    nums = _argnums_tuple(argnums)

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _DiffCall("value_and_grad", args, kwargs, nums, wrt)
        diff, kept = call.split()
        (value, extra), g = jax.value_and_grad(
            call.traced(fun, has_aux),
            has_aux=True,
            holomorphic=holomorphic,
            allow_int=allow_int,
        )(diff, kept)
        aux = call.finish(extra)
        grads = call.grads(g)
        return ((value, aux), grads) if has_aux else (value, grads)

    return wrapper


def grad(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    *,
    wrt: core.Filter = core.Param,
    holomorphic: bool = False,
    allow_int: bool = False,
) -> Callable:
    """Like ``jax.grad``, for functions of ramie objects (see ``value_and_grad``).

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import grad
    >>> class Scale(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.array(3.0))
    >>> float(grad(lambda m: m.w.value ** 2)(Scale())["w"].value)
    6.0
    """
    vg = value_and_grad(
        fun, argnums, has_aux, wrt=wrt, holomorphic=holomorphic, allow_int=allow_int
    )

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out, grads = vg(*args, **kwargs)
        return (grads, out[1]) if has_aux else grads

    return wrapper


def vjp(fun: Callable, *primals: Any, has_aux: bool = False, wrt: core.Filter = core.Param):
    """Like ``jax.vjp``: ``(out, vjp_fn)``; ``vjp_fn(ct)`` gives a cotangent per primal.

    Objects among the primals get a ``State`` of the ``wrt`` leaves as cotangent.
    Mutations made by ``fun`` are written back when ``vjp`` returns.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import vjp
    >>> class Scale(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.array(3.0))
    >>> out, back = vjp(lambda m, x: m.w.value * x, Scale(), jnp.array(2.0))
    >>> m_ct, x_ct = back(jnp.array(1.0))
    >>> float(out), float(m_ct["w"].value), float(x_ct)
    (6.0, 2.0, 3.0)
    """
    call = _DiffCall("vjp", primals, {}, tuple(range(len(primals))), wrt)
    diff, kept = call.split()
    pure = call.traced(fun, has_aux)
    out, back, extra = jax.vjp(lambda d: pure(d, kept), diff, has_aux=True)
    aux = call.finish(extra)

    def vjp_fn(cotangent: Any) -> tuple:
        (g,) = back(cotangent)
        grads = call.grads(g)
        return grads if isinstance(grads, tuple) else (grads,)

    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def jvp(
    fun: Callable,
    primals: Sequence[Any],
    tangents: Sequence[Any],
    *,
    has_aux: bool = False,
    wrt: core.Filter = core.Param,
):
    """Like ``jax.jvp``; the tangent of an object primal is a ``State`` of its ``wrt`` leaves.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import jvp
    >>> class Scale(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.array(3.0))
    >>> m = Scale()
    >>> t = core.State({"w": core.Param(jnp.array(1.0))})
    >>> out, tangent_out = jvp(lambda m, x: m.w.value * x, (m, 2.0), (t, 0.0))
    >>> float(out), float(tangent_out)
    (6.0, 2.0)
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise _errors.TransformArgumentError(
            _errors.JVP_ARITY.format(primals=len(primals), tangents=len(tangents))
        )
    call = _DiffCall("jvp", primals, {}, tuple(range(len(primals))), wrt)
    diff, kept = call.split()
    tangent_diff = _tangent_leaves(call, tangents)
    pure = call.traced(fun, has_aux)
    (out, extra), (t_out, _) = jax.jvp(lambda d: pure(d, kept), (diff,), (tangent_diff,))
    aux = call.finish(extra)
    return (out, t_out, aux) if has_aux else (out, t_out)


def _tangent_leaves(call: _DiffCall, tangents: tuple):
    """Tangent leaves in the order of the differentiated leaves of ``call``."""
    flat = {}
    for i, t in enumerate(tangents):
        if isinstance(call._arg(i), ga.GRAPH_TYPES):
            flat[i] = core.State(t).flat_state() if isinstance(t, dict) else {}
    values = []
    for path, m in zip(call.ex.fg.paths, call.vmask, strict=True):
        if m:
            arg = call.obj_arg[path[0]]
            leaf = flat.get(arg, {}).get(path[1:])
            if leaf is None:
                raise _errors.TransformArgumentError(
                    _errors.JVP_MISSING_TANGENT.format(path=core.format_path(path[1:]), arg=arg)
                )
            values.append(leaf.value if isinstance(leaf, core.Variable) else leaf)
    leaves = []
    for i, t in enumerate(tangents):
        if i not in flat:
            leaves.extend(jax.tree_util.tree_leaves(t))
    return (values, leaves)
