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
from typing import Any, NamedTuple

import jax

from ramie import core
from ramie.core import extend

from . import _errors
from . import _graphargs as ga


class DiffState(NamedTuple):
    """An ``argnums`` entry of ``grad``/``value_and_grad`` with its own filter.

    ``DiffState(argnum, filter)`` differentiates argument ``argnum`` with
    respect to the leaves ``filter`` selects (instead of ``wrt``); it may be
    mixed with plain ints in a tuple, each int using ``wrt``.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import DiffState, grad
    >>> class Affine(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.array(2.0))
    ...         self.b = core.Param(jnp.array(1.0))
    >>> g = grad(lambda m: m.w.value * m.b.value, argnums=DiffState(0, core.PathContains("w")))
    >>> sorted(g(Affine()).keys())
    ['w']
    """

    argnum: int
    filter: Any


def _argnums_tuple(argnums: Any) -> tuple[int, ...]:
    """The argument numbers of ``argnums`` (ints and ``DiffState``s, or one of them)."""
    if isinstance(argnums, (int, DiffState)):
        argnums = (argnums,)
    return tuple(a.argnum if isinstance(a, DiffState) else a for a in argnums)


def _wrt_per_argnum(argnums: Any, wrt: Any) -> dict:
    """The filter of each argument number: its ``DiffState``'s, else ``wrt``."""
    if isinstance(argnums, (int, DiffState)):
        argnums = (argnums,)
    return {
        a.argnum if isinstance(a, DiffState) else a: a.filter if isinstance(a, DiffState) else wrt
        for a in argnums
    }


class _DiffCall:
    """One call of a differentiated function: which leaves are differentiated, and how.

    A Module among the differentiated arguments contributes the leaves ``wrt``
    selects; a Variable given directly (bare, or inside a State, dict or list)
    is differentiated whatever its kind, as ``jax.grad`` differentiates every
    leaf of a pytree argument.
    """

    def __init__(
        self,
        name: str,
        args: tuple,
        kwargs: dict,
        argnums: tuple,
        wrt: Any,
        per_arg: dict | None = None,
    ):
        for i in argnums:
            if not -len(args) <= i < len(args):
                raise _errors.TransformArgumentError(
                    _errors.ARGNUMS_RANGE.format(
                        transform=name, argnums=argnums, count=len(args), index=i
                    )
                )
        self.name = name
        self.args = args
        self.argnums = tuple(i % len(args) for i in argnums)
        self.ex = ex = ga.Extracted((args, kwargs))
        positions = ga.arg_positions(ex.spec)
        slots = ex.spec.slots
        # Objects (first appearance) and plain leaves, by the argument they came from;
        # ``items[a]``: argument a's flat items as (object slot or -1, plain leaf index).
        self.obj_arg: list = [None] * len(ex.objs)
        self.items: dict = {}
        leaf_arg = []
        for pos, slot in zip(positions, slots, strict=True):
            if slot >= 0:
                if self.obj_arg[slot] is None:
                    self.obj_arg[slot] = pos
                self.items.setdefault(pos, []).append((slot, -1))
            else:
                self.items.setdefault(pos, []).append((-1, len(leaf_arg)))
                leaf_arg.append(pos)
        fg = ex.fg
        position = {id(r): k for k, r in enumerate(fg.refs)}
        # Leaf position of each object that is a Variable itself (None for Modules).
        self.var_pos = [position[id(o)] if isinstance(o, core.Variable) else None for o in ex.objs]
        # An object passed in several arguments is differentiated if any is in argnums.
        diff_objs = {s for a in self.argnums for s, _ in self.items.get(a, ()) if s >= 0}
        direct = {self.var_pos[i] for i in diff_objs if self.var_pos[i] is not None}
        # Each object's filter: that of the first differentiated argument holding it.
        filters = {}
        for a, given in zip(argnums, self.argnums, strict=True):
            wanted = wrt if per_arg is None else per_arg.get(a, per_arg.get(given, wrt))
            for s, _ in self.items.get(given, ()):
                if s >= 0:
                    filters.setdefault(s, core.to_predicate(wanted))
        self.vmask = tuple(
            k in direct
            or (
                p[0] in diff_objs
                and isinstance(ex.objs[p[0]], core.Module)
                and filters[p[0]](p[1:], extend.leaf(r))
            )
            for k, (p, r) in enumerate(zip(fg.paths, fg.refs, strict=True))
        )
        self.lmask = tuple(a in self.argnums for a in leaf_arg)
        self.diff_positions = [k for k, m in enumerate(self.vmask) if m]
        self.diff_leaves = [k for k, m in enumerate(self.lmask) if m]

    def split(self):
        values = self.ex.fg.values()
        leaves = self.ex.leaves
        dv, kv = _split(self.vmask, values)
        dl, kl = _split(self.lmask, leaves)
        return ga.Leaves(dv, dl), ga.Leaves(kv, kl)

    def traced(self, fun: Callable, has_aux: bool) -> Callable:
        """The pure function of (differentiated, kept) leaves that JAX differentiates."""
        graphdef, spec = self.ex.fg.graphdef, self.ex.spec

        def pure(diff: ga.Leaves, kept: ga.Leaves):
            values = _join(self.vmask, diff.values, kept.values)
            leaves = _join(self.lmask, diff.leaves, kept.leaves)
            with extend.transform_frame(self.name) as frame:
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
            return out, ga.Traced(new_graphdef, new_values, meta, payload)

        return pure

    def finish(self, extra: ga.Traced) -> Any:
        """Write mutations back; return the user's aux output."""
        ga.propagate(self.ex.fg, self.ex.objs, extra.graphdef, extra.values)
        return ga.import_(extra.meta, extra.payload, self.ex.objs)

    def grads(self, diff_grads) -> Any:
        """Per argnum, gradients shaped like the argument.

        A Module becomes a State of its differentiated leaves, a Variable the
        same kind of Variable holding its gradient, a plain leaf its gradient.
        """
        fg = self.ex.fg
        by_position = dict(zip(self.diff_positions, diff_grads.values, strict=True))
        by_leaf = dict(zip(self.diff_leaves, diff_grads.leaves, strict=True))
        by_obj: dict[int, dict] = {}
        for k, g in by_position.items():
            path = fg.paths[k]
            leaf = fg.refs[k]
            leaf = leaf.replace(g) if isinstance(leaf, core.Variable) else g
            by_obj.setdefault(path[0], {})[path[1:]] = leaf

        def obj_grad(slot):
            pos = self.var_pos[slot]
            if pos is not None:
                return fg.refs[pos].replace(by_position[pos])
            return core.State.from_flat_state(by_obj.get(slot, {}))

        out = []
        for argnum in self.argnums:
            parts = [
                obj_grad(slot) if slot >= 0 else by_leaf[leaf]
                for slot, leaf in self.items.get(argnum, [])
            ]
            out.append(self._treedef(argnum).unflatten(parts))
        return out[0] if len(out) == 1 else tuple(out)

    def diff_values(self, given: dict, missing: str) -> tuple:
        """The differentiated leaves, in ``split`` order, out of per-argument trees.

        ``given`` maps each argnum to a tree shaped like the one ``grads``
        returns for it (a tangent or cotangent); ``missing`` is the message
        (with ``{path}`` and ``{arg}``) for a Module leaf it does not hold.
        """
        by_position: dict[int, Any] = {}
        by_leaf: dict[int, Any] = {}
        fg = self.ex.fg
        for argnum in self.argnums:
            items = self.items.get(argnum, [])
            parts = self._treedef(argnum).flatten_up_to(given[argnum])
            for (slot, leaf), part in zip(items, parts, strict=True):
                if slot < 0:
                    by_leaf[leaf] = part
                elif self.var_pos[slot] is not None:
                    by_position[self.var_pos[slot]] = _unwrap(part)
                else:
                    flat = core.State(part).flat_state() if isinstance(part, dict) else {}
                    for k in self.diff_positions:
                        path = fg.paths[k]
                        if path[0] != slot:
                            continue
                        found = flat.get(path[1:])
                        if found is None:
                            raise _errors.TransformArgumentError(
                                missing.format(path=core.format_path(path[1:]), arg=argnum)
                            )
                        by_position[k] = _unwrap(found)
        return ga.Leaves(
            [by_position[k] for k in self.diff_positions],
            [by_leaf[k] for k in self.diff_leaves],
        )

    def _treedef(self, argnum):
        """The structure of argument ``argnum`` down to its objects (its gradient's).

        A ``Dict``/``List`` holding a Module becomes a plain dict/list there: the
        Module's gradient is a State, which a tracked container refuses to hold.
        """
        arg = self.args[argnum]
        slots = [s for s, _ in self.items.get(argnum, ()) if s >= 0]
        if any(isinstance(self.ex.objs[s], core.Module) for s in slots):
            arg = _untracked(arg)
        return jax.tree_util.tree_structure(arg, is_leaf=ga.is_graph)


def _untracked(tree: Any) -> Any:
    """``tree`` with every ``Dict``/``List`` (outside objects) as a plain dict/list."""
    if isinstance(tree, ga.GRAPH_TYPES):
        return tree
    if type(tree) in (dict, core.Dict):
        return {k: _untracked(v) for k, v in tree.items()}
    if type(tree) in (list, core.List):
        return [_untracked(v) for v in tree]
    if type(tree) is tuple:
        return tuple(_untracked(v) for v in tree)
    return tree


def _unwrap(x):
    return x.value if isinstance(x, core.Variable) else x


def _split(mask, items):
    return (
        [x for x, m in zip(items, mask, strict=True) if m],
        [x for x, m in zip(items, mask, strict=True) if not m],
    )


def _join(mask, chosen, rest):
    a, b = iter(chosen), iter(rest)
    return [next(a) if m else next(b) for m in mask]


def value_and_grad(
    fun: Callable | None = None,
    argnums: int | DiffState | Sequence[int | DiffState] = 0,
    has_aux: bool = False,
    *,
    wrt: core.Filter = core.Param,
    holomorphic: bool = False,
    allow_int: bool = False,
) -> Callable:
    """Like ``jax.value_and_grad``, for functions of ramie objects.

    For a Module among ``argnums`` the gradient is a ``State`` of the leaves
    that ``wrt`` selects (``Param`` by default; any filter works). Any other
    argument (a ``State``, dict, list, ``Dict``, a bare Variable, arrays) is a
    pytree, differentiated as ``jax.grad`` does: its gradient has its
    structure, each Variable replaced by one of the same kind holding the
    gradient (``wrt`` does not filter it). Mutations made by ``fun``
    (BatchNorm statistics, RNG counters, sown Intermediates) are written back.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import value_and_grad
    >>> class Scale(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.array(3.0))
    >>> loss, grads = value_and_grad(lambda m, x: (m.w.value * x) ** 2)(Scale(), 2.0)
    >>> float(loss), float(grads["w"].value)
    (36.0, 24.0)

    ``argnums`` entries may be ``DiffState(argnum, filter)`` to choose the
    differentiated state per argument. Without ``fun`` it returns a
    decorator: ``@value_and_grad(has_aux=True)``.
    """
    if fun is None:
        return functools.partial(
            value_and_grad,
            argnums=argnums,
            has_aux=has_aux,
            wrt=wrt,
            holomorphic=holomorphic,
            allow_int=allow_int,
        )
    nums = _argnums_tuple(argnums)
    per_arg = _wrt_per_argnum(argnums, wrt)

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _DiffCall("value_and_grad", args, kwargs, nums, wrt, per_arg)
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
    fun: Callable | None = None,
    argnums: int | DiffState | Sequence[int | DiffState] = 0,
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

    Without ``fun`` it returns a decorator: ``@grad(argnums=1)``.
    """
    if fun is None:
        return functools.partial(
            grad,
            argnums=argnums,
            has_aux=has_aux,
            wrt=wrt,
            holomorphic=holomorphic,
            allow_int=allow_int,
        )
    vg = value_and_grad(
        fun, argnums, has_aux, wrt=wrt, holomorphic=holomorphic, allow_int=allow_int
    )

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out, grads = vg(*args, **kwargs)
        if has_aux:
            _, aux = out  # (value, aux)
            return grads, aux
        return grads

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
    return call.diff_values(dict(enumerate(tangents)), _errors.JVP_MISSING_TANGENT)
