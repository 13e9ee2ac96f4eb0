"""``scan`` over ramie objects, with vmap-style ``in_axes``/``out_axes`` and a ``Carry``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _axes, _cache, _errors, _partition
from . import _graphargs as ga
from ._axes import Carry


def _is_scanned(axis: Any) -> bool:
    return isinstance(axis, int) and not isinstance(axis, bool)


def _pick(axes: list, items: list, scanned: bool) -> list:
    return [x for x, a in zip(items, axes, strict=True) if _is_scanned(a) == scanned]


def _assemble(axes: list, carried: list, scanned: list) -> list:
    c, s = iter(carried), iter(scanned)
    return [next(s) if _is_scanned(a) else next(c) for a in axes]


def aval_changes(labels: list[str], before: list, after: list) -> list[str]:
    """``label: float32[3] -> float32[4]`` for each position whose shape or dtype changed."""
    out = []
    for label, a, b in zip(labels, before, after, strict=True):
        da, db = jnp.result_type(a), jnp.result_type(b)
        sa, sb = jnp.shape(a), jnp.shape(b)
        if sa != sb or da != db:
            out.append(f"'{label}': {da}{list(sa)} -> {db}{list(sb)}")
    return out


def scan(
    fun: Callable | None = None,
    *,
    length: int | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    in_axes: Any = (Carry, 0),
    out_axes: Any = (Carry, 0),
    transform_metadata: Mapping[str, Any] | None = None,
) -> Any:
    """``jax.lax.scan`` with vmap-style axes, for functions of ramie objects.

    ``in_axes`` gives per positional argument ``Carry`` (at most one: the
    value threaded through the iterations), an int (scanned over that axis)
    or ``None`` (broadcast); objects also take a ``StateAxes``. ``out_axes``
    says where the function's output puts the carry (``Carry``) and the
    per-iteration outputs (stacked along an int axis). The state of scanned
    objects is updated slice by slice (e.g. BatchNorm statistics of each
    layer in a stack); broadcast objects' state (RNG counters) is carried.
    Keyword arguments naming positional parameters take the ``in_axes`` of
    their position (as in Flax NNX); keyword-only ones are broadcast.
    ``transform_metadata={PARTITION_NAME: "layers"}`` takes the scanned axis
    out of the ``sharding`` metadata that scanned Variables show inside.

    >>> import jax, jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import Carry, scan
    >>> class Stack(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.arange(3.0))  # one weight per "layer"
    >>> @scan(in_axes=(0, Carry), out_axes=Carry)
    ... def forward(layer, x):
    ...     return x * layer.w.value + 1
    >>> float(forward(Stack(), jnp.array(1.0)))  # ((1*0+1)*1+1)*2+1
    5.0
    """
    if fun is None:
        return functools.partial(
            scan,
            length=length,
            reverse=reverse,
            unroll=unroll,
            in_axes=in_axes,
            out_axes=out_axes,
            transform_metadata=transform_metadata,
        )

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args, kwargs = _axes.bind_keywords(fun, args, kwargs)
        arg_axes = _axes.per_argument("scan", in_axes, len(args))
        carries = [i for i, a in enumerate(arg_axes) if a is Carry]
        if len(carries) > 1:
            raise _errors.TransformArgumentError(
                _errors.NO_CARRY.format(count=len(carries), in_axes=in_axes)
            )
        carry_arg = carries[0] if carries else None
        out_has_carry = out_axes is Carry or (
            isinstance(out_axes, tuple) and any(a is Carry for a in out_axes)
        )
        if out_has_carry and carry_arg is None:
            raise _errors.TransformArgumentError(_errors.NO_CARRY.format(count=0, in_axes=in_axes))
        ex = ga.Extracted((args, kwargs))
        fg = ex.fg
        v_axes = _axes.value_axes(ex, arg_axes, kwargs_axis=None, transform="scan")
        l_axes = _axes.plain_axes(args, kwargs, arg_axes, kwargs_axis=None)
        values, leaves = fg.values(), ex.leaves
        # Plain leaves: Carry ones are carried, ints scanned, None ones broadcast: arrays
        # ride along in the carry unchanged, other values are part of the static body.
        carry_l = [x for x, a in zip(leaves, l_axes, strict=True) if a is Carry]
        const_l = [x for x, a in zip(leaves, l_axes, strict=True) if a is None]
        const_arrays = [x for x in const_l if _is_array(x)]
        const_static = tuple(None if _is_array(x) else x for x in const_l)
        xs_l = _to_front(l_axes, leaves)
        carry_v = _pick(v_axes, values, scanned=False)
        xs_v = _to_front(v_axes, values)
        labels = _carry_labels(ex, v_axes, args, carry_arg)
        carry_tree = None
        if carry_arg is not None:
            carry_tree = jax.tree_util.tree_structure(ga.as_exported(args[carry_arg], ex.objs))
        partition = _partition.name_of(transform_metadata)
        static = _ScanStatic(
            fg.graphdef,
            fg.graphdef if partition is None else _partition.stripped(fg, v_axes, partition),
            ex.spec,
            tuple(v_axes),
            tuple(l_axes),
            out_axes,
            out_has_carry,
            carry_tree,
            tuple(labels),
            const_static,
        )
        body = _cache.traced_body((fun,), static, lambda refs: _scan_body(refs[0], static))
        (final_cv, final_cl, _), (ys_v, ys, out_static) = jax.lax.scan(
            body,
            (carry_v, carry_l, const_arrays),
            (xs_v, xs_l),
            length=length,
            reverse=reverse,
            unroll=unroll,
        )
        meta, ys_axes = out_static.value
        scanned = [jnp.moveaxis(v, 0, a) for v, a in zip(ys_v, _scanned_axes(v_axes), strict=True)]
        fg.set_values(_assemble(v_axes, final_cv, scanned))
        ys = _move_ys(ys, ys_axes)
        carry_out = None
        if out_has_carry:
            carry_out = carry_tree.unflatten(final_cl)
        result = _join_output(out_axes, carry_out, ys)
        return ga.import_(ga.HAS_OBJECTS, result, ex.objs)

    return wrapper


def _is_array(x: Any) -> bool:
    return isinstance(x, (jax.Array, np.ndarray))


class _ScanStatic(NamedTuple):
    """Everything a scan body depends on besides the user's function (hashable)."""

    graphdef: Any
    inner_graphdef: Any  # ``graphdef`` as the body sees it (see ``_partition``)
    spec: tuple
    v_axes: tuple
    l_axes: tuple
    out_axes: Any
    out_has_carry: bool
    carry_tree: Any
    labels: tuple
    const_static: tuple  # broadcast plain leaves that are not arrays (None for arrays)


def _scan_body(fun_ref: Callable, st: _ScanStatic) -> Callable:
    """The function ``jax.lax.scan`` traces, for one static description of a call."""

    def body(carry, x):
        cv, cl, const_arrays = carry
        xv, xl = x
        vals = _assemble(st.v_axes, cv, xv)
        arrays = iter(const_arrays)
        consts = [next(arrays) if k is None else k for k in st.const_static]
        c_it, k_it, x_it = iter(cl), iter(consts), iter(xl)
        lvs = [
            next(c_it) if a is Carry else next(k_it) if a is None else next(x_it) for a in st.l_axes
        ]
        traced = ga.call_traced("scan", fun_ref(), st.inner_graphdef, st.spec, vals, lvs)
        if traced.graphdef is not None:
            raise _errors.StructureChangedError(_errors.SCAN_NEW_STATE)
        new_values, meta = traced.values, traced.meta
        out_carry, ys, ys_axes = _split_output(st.out_axes, traced.payload)
        new_cl = cl
        if st.out_has_carry:
            new_cl = carry_leaves(out_carry, st.carry_tree)
        new_cv = _pick(st.v_axes, new_values, scanned=False)
        changed = aval_changes(st.labels, [*cv, *cl], [*new_cv, *new_cl])
        if changed:
            raise _errors.CarryError(
                _errors.CARRY_CHANGED.format(transform="scan", changes="\n".join(changed))
            )
        new_xv = _pick(st.v_axes, new_values, scanned=True)
        return (new_cv, new_cl, const_arrays), (new_xv, ys, ga.Static((meta, ys_axes)))

    return body


def _to_front(axes: list, items: list) -> list:
    return [jnp.moveaxis(x, a, 0) for x, a in zip(items, axes, strict=True) if _is_scanned(a)]


def _scanned_axes(axes: list) -> list:
    return [a for a in axes if _is_scanned(a)]


def _carry_labels(ex: ga.Extracted, v_axes: list, args: tuple, carry_arg: int | None) -> list:
    names = ga.object_names(ex.spec, len(ex.objs))
    labels = [
        ga.path_name(names, p)
        for p, a in zip(ex.fg.paths, v_axes, strict=True)
        if not _is_scanned(a)
    ]
    if carry_arg is not None:
        flat = jax.tree_util.tree_flatten_with_path(args[carry_arg], is_leaf=ga.is_graph)[0]
        labels += [
            f"args[{carry_arg}]{jax.tree_util.keystr(path)}"
            for path, x in flat
            if not isinstance(x, ga.GRAPH_TYPES)
        ]
    return labels


def _split_output(out_axes: Any, out: Any) -> tuple:
    """(carry part, per-iteration part, its axes) of the function's output."""
    if out_axes is Carry:
        return out, None, None
    if isinstance(out_axes, tuple):
        if not isinstance(out, tuple) or len(out) != len(out_axes):
            raise _errors.TransformArgumentError(
                _errors.SCAN_OUT_ARITY.format(out_axes=out_axes, found=_describe(out))
            )
        carry = next((o for o, a in zip(out, out_axes, strict=True) if a is Carry), None)
        ys = tuple(o for o, a in zip(out, out_axes, strict=True) if a is not Carry)
        axes = tuple(a for a in out_axes if a is not Carry)
        return carry, ys, axes
    return None, out, out_axes


def _describe(x: Any) -> str:
    return f"a tuple of {len(x)}" if isinstance(x, tuple) else f"a {type(x).__name__}"


def carry_leaves(out_carry: Any, carry_tree: Any, transform: str = "scan") -> list:
    """The leaves of a returned carry, checking it kept the input carry's structure."""
    leaves, tree = jax.tree_util.tree_flatten(out_carry)
    if tree != carry_tree:
        raise _errors.CarryError(
            _errors.CARRY_CHANGED.format(
                transform=transform,
                changes=f"  the carry's structure went from {carry_tree} to {tree}",
            )
        )
    return leaves


def _move_ys(ys: Any, axes: Any) -> Any:
    if ys is None:
        return None
    if isinstance(axes, tuple):
        return tuple(_move_ys(y, a) for y, a in zip(ys, axes, strict=True))
    if axes is None:
        raise _errors.TransformArgumentError(_errors.SCAN_OUT_NONE)
    if axes == 0:
        return ys
    return jax.tree_util.tree_map(lambda y: jnp.moveaxis(y, 0, axes), ys)


def _join_output(out_axes: Any, carry: Any, ys: Any) -> Any:
    if out_axes is Carry:
        return carry
    if isinstance(out_axes, tuple):
        it = iter(ys)
        return tuple(carry if a is Carry else next(it) for a in out_axes)
    return ys
