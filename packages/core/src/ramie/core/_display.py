"""Showing objects: ``display`` (treescope or a text tree) and ``summary`` (a table)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from . import _reprs
from ._api import merge, split
from ._containers import ARRAY_TYPES
from ._graph import flatten
from ._module import Module
from ._nodes import LIST as _LIST
from ._variables import Param, Variable


def _describe_array(x: Any) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is None or dtype is None:
        return repr(x)
    if int(np.prod(shape)) <= 4 and hasattr(x, "tolist"):
        try:
            return f"{dtype}{list(shape)} {np.asarray(x).tolist()}"
        except Exception:  # abstract or key arrays have no concrete values
            pass
    return f"{dtype}{list(shape)}"


def _describe_leaf(v: Any) -> str:
    if isinstance(v, Variable):
        meta = "".join(f", {k}={item!r}" for k, item in v._metadata.items())
        inner = v._value
        if isinstance(inner, (tuple, list)):
            body = f"({', '.join(_describe_array(i) for i in inner)})"
        else:
            body = _describe_array(inner)
        return f"{type(v).__name__} {body}{meta}"
    return _describe_array(v)


def is_noise(value: Any) -> bool:
    """True for static attributes that only add noise to a display: classes and dtypes.

    Layers keep ``param_dtype=jnp.float32`` (a class), ``lora_param_type`` and
    the like; the Variables they hold already show their dtype and kind.
    """
    return isinstance(value, (type, np.dtype))


def render(obj: Any, indent: str = "  ") -> str:
    """A readable, indented text tree of a Module, State or container.

    Shared objects are shown once; later references say where they live.
    """
    lines: list[str] = []
    seen: dict[int, str] = {}
    _render(obj, "", 0, lines, seen, (), indent)
    return "\n".join(lines)


def _render(obj, label, depth, lines, seen, path, indent) -> None:
    pad = indent * depth
    head = f"{pad}{label}: " if label != "" else pad
    if isinstance(obj, (Module, Variable)) and id(obj) in seen:
        lines.append(f"{head}<shared: same object as '{seen[id(obj)]}'>")
        return
    if isinstance(obj, Module):
        seen[id(obj)] = "/".join(map(str, path)) or "<root>"
        lines.append(f"{head}{type(obj).__name__}")
        for k, v in vars(obj).items():
            if not is_noise(v):
                _render(v, k, depth + 1, lines, seen, path + (k,), indent)
    elif isinstance(obj, Variable):
        seen[id(obj)] = "/".join(map(str, path)) or "<root>"
        lines.append(f"{head}{_describe_leaf(obj)}")
    elif isinstance(obj, Mapping):
        lines.append(f"{head}{type(obj).__name__}" + ("" if obj else " {}"))
        for k, v in obj.items():
            _render(v, k, depth + 1, lines, seen, path + (k,), indent)
    elif isinstance(obj, (list, tuple)) and any(
        isinstance(v, (Module, Variable, Mapping, list, tuple, *ARRAY_TYPES)) for v in obj
    ):
        lines.append(f"{head}{type(obj).__name__}[{len(obj)}]")
        for i, v in enumerate(obj):
            _render(v, i, depth + 1, lines, seen, path + (i,), indent)
    elif isinstance(obj, ARRAY_TYPES):
        lines.append(f"{head}{_describe_array(obj)}")
    else:
        lines.append(f"{head}{obj!r}")


def render_graphdef(graphdef: Any) -> str:
    """A short text description of a GraphDef: its root type and leaf paths."""
    node = graphdef.node
    cls = getattr(node, "cls", None)  # Module and tuple roots name their class
    root = cls.__name__ if cls is not None else ("list" if node.code == _LIST else "dict")
    paths = ", ".join("/".join(map(str, p)) for p in graphdef.paths[:8])
    more = f", ... ({len(graphdef.paths)} leaves)" if len(graphdef.paths) > 8 else ""
    return f"GraphDef({root}; leaves: {paths}{more})"


def treescope_repr(obj: Any, path: str | None, subtree_renderer: Any) -> Any:
    """Render a Module or Variable for treescope as ``Type(attr=..., ...)``.

    Called through ``__treescope_repr__``, only when treescope is installed.
    """
    from treescope import repr_lib

    if isinstance(obj, Variable):
        attributes = {"value": obj._value, **obj._metadata}
        color = "#f4c2a0" if isinstance(obj, Param) else "#b9d7f0"
    else:
        attributes = {k: v for k, v in vars(obj).items() if not is_noise(v)}
        color = None
    return repr_lib.render_object_constructor(
        type(obj), attributes, path, subtree_renderer, roundtrippable=False, color=color
    )


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        return shell.get_ipython() is not None and "IPKernelApp" in shell.get_ipython().config
    except Exception:
        return False


def display(*objs: Any) -> None:
    """Show objects: with treescope in a notebook when it is installed, else as text.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, display
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.zeros((2, 3)))
    >>> display(M())
    M
      w: Param float32[2, 3]
    """
    if _in_notebook():
        try:
            import treescope
        except ImportError:
            treescope = None
        if treescope is not None:
            for obj in objs:
                treescope.display(obj)
            return
    for obj in objs:
        print(render(obj))


def _nbytes(x: Any) -> int:
    if isinstance(x, Variable):
        x = x._value
    if isinstance(x, (tuple, list)):
        return sum(_nbytes(i) for i in x)
    size, dtype = getattr(x, "size", None), getattr(x, "dtype", None)
    if size is None or dtype is None:
        return 0
    try:
        return int(size) * np.dtype(dtype).itemsize
    except TypeError:  # PRNG key dtypes
        return int(getattr(x, "nbytes", 0) or 0)


def _count(x: Any) -> int:
    if isinstance(x, Variable):
        x = x._value
    return int(getattr(x, "size", 0) or 0)


def _kind_footer(kind_totals: dict[type, list[int]]) -> list[tuple[str, ...]]:
    """One row per kind shown; a kind's row also counts the kinds shown that subclass it.

    So ``total Param`` includes ``LoRAParam`` (a Param) and says so; an
    ``array`` row counts plain arrays.
    """
    rows = []
    for kind in kind_totals:
        if kind is type(None):
            count, nbytes = kind_totals[kind]
            rows.append(("total array", "", "", "", f"{count:,} values", f"{nbytes:,}"))
            continue
        subs = [
            k for k in kind_totals if k is not kind and k is not type(None) and issubclass(k, kind)
        ]
        count = sum(kind_totals[k][0] for k in (kind, *subs))
        nbytes = sum(kind_totals[k][1] for k in (kind, *subs))
        label = f"total {kind.__name__}"
        if subs:
            label += f" (incl. {', '.join(k.__name__ for k in subs)})"
        rows.append((label, "", "", "", f"{count:,} values", f"{nbytes:,}"))
    return rows


def summary(obj: Any) -> str:
    """A table of every leaf: path, type, shape, dtype, parameters and bytes.

    Each module gets a subtotal row; the last rows give the totals per
    Variable kind and overall. The table is printed and returned.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, summary
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.zeros((2, 3)))
    >>> table = summary(M())  # doctest: +ELLIPSIS
    path  type   shape   dtype    params  bytes
    ...
    >>> "6" in table.splitlines()[-1]
    True
    """
    fg = flatten(obj)
    rows: list[tuple[str, ...]] = []
    module_totals: dict[tuple, list[int]] = {}
    kind_totals: dict[type, list[int]] = {}
    for path, leaf in zip(fg.graphdef.paths, fg.leaves(), strict=True):
        kind = type(leaf).__name__ if isinstance(leaf, Variable) else "array"
        value = leaf._value if isinstance(leaf, Variable) else leaf
        params = _count(leaf) if isinstance(leaf, Param) else 0
        nbytes = _nbytes(leaf)
        shape = getattr(value, "shape", None)
        rows.append(
            (
                "/".join(map(str, path)),
                kind,
                "" if shape is None else str(tuple(shape)),
                str(getattr(value, "dtype", "")),
                f"{params:,}",
                f"{nbytes:,}",
            )
        )
        for depth in range(len(path)):
            totals = module_totals.setdefault(path[:depth], [0, 0])
            totals[0] += params
            totals[1] += nbytes
        kt = kind_totals.setdefault(
            type(leaf) if isinstance(leaf, Variable) else type(None), [0, 0]
        )
        kt[0] += _count(leaf)
        kt[1] += nbytes
    sub_rows = []
    for mpath, (params, nbytes) in module_totals.items():
        if not mpath:
            continue
        sub_rows.append(
            ("/".join(map(str, mpath)) + "/*", "(subtotal)", "", "", f"{params:,}", f"{nbytes:,}")
        )
    all_rows = sorted(rows + sub_rows, key=lambda r: r[0].replace("/*", "/"))
    total_params, total_bytes = module_totals.get((), [0, 0])
    footer = _kind_footer(kind_totals)
    footer.append(("total", "", "", "", f"{total_params:,}", f"{total_bytes:,}"))
    header = ("path", "type", "shape", "dtype", "params", "bytes")
    table = [header, *all_rows, *footer]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    text = "\n".join(
        "  ".join(
            c.ljust(w) if i < 4 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=False))
        ).rstrip()
        for r in table
    )
    print(text)
    return text


def _shapes(tree: Any) -> str:
    """``float32[2,3]`` for every array leaf of ``tree``, comma-separated."""
    leaves = jax.tree.leaves(tree)
    text = [
        f"{leaf.dtype}[{','.join(map(str, leaf.shape))}]" if hasattr(leaf, "shape") else repr(leaf)
        for leaf in leaves
    ]
    return ", ".join(text) if text else "-"


def _record_calls(obj: Module, method: str, args: tuple, kwargs: dict) -> dict[tuple, tuple]:
    """``{module path: (inputs, outputs)}`` of every module call made by ``obj.method(*args)``.

    Runs under ``jax.eval_shape`` on a functional copy, so nothing is computed
    and ``obj`` is not changed. Each module class is wrapped for the duration.
    """
    graphdef, state = split(obj)
    calls: dict[tuple, tuple] = {}
    classes = {type(m) for _, m in obj.iter_modules()}
    originals = {cls: cls.__call__ for cls in classes if "__call__" in dir(cls)}

    def run(state: Any, args: tuple, kwargs: dict) -> Any:
        model = merge(graphdef, state)
        paths = {id(m): p for p, m in model.iter_modules()}

        def wrap(cls: type, call: Any) -> Any:
            def recorded(self: Any, *a: Any, **k: Any) -> Any:
                out = call(self, *a, **k)
                path = paths.get(id(self))
                if path is not None and path not in calls:
                    calls[path] = (_shapes((a, k)), _shapes(out))
                return out

            return recorded

        for cls, call in originals.items():
            cls.__call__ = wrap(cls, call)
        try:
            out = getattr(model, method)(*args, **kwargs)
        finally:
            for cls, call in originals.items():
                cls.__call__ = call
        if method != "__call__":
            calls.setdefault((), (_shapes((args, kwargs)), _shapes(out)))
        return out

    jax.eval_shape(run, state, args, kwargs)
    return calls


def tabulate(
    obj: Module, *inputs: Any, depth: int | None = None, method: str = "__call__", **kwargs: Any
) -> str:
    """A table of the modules of ``obj``: path, type, inputs and outputs, Variables per kind.

    Flax NNX's ``tabulate``. Each row is a module (down to ``depth`` levels;
    None for all) with, per Variable kind, the number of values and bytes in
    it and everything below it (the counts ``summary`` gives). With
    ``inputs``, ``obj.method(*inputs, **kwargs)`` is traced abstractly (no
    computation, ``obj`` unchanged) and every module call's input and output
    shapes are shown. The table is printed and returned.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, tabulate
    >>> class Dense(Module):
    ...     def __init__(self, n, m):
    ...         self.w = Param(jnp.zeros((n, m)))
    ...     def __call__(self, x):
    ...         return x @ self.w
    >>> class Net(Module):
    ...     def __init__(self):
    ...         self.a, self.b = Dense(2, 3), Dense(3, 1)
    ...     def __call__(self, x):
    ...         return self.b(self.a(x))
    >>> _ = tabulate(Net(), jnp.ones((4, 2)))
    path  type   inputs        outputs       Param
    -     Net    float32[4,2]  float32[4,1]  9 (36 B)
    a     Dense  float32[4,2]  float32[4,3]  6 (24 B)
    b     Dense  float32[4,3]  float32[4,1]  3 (12 B)
    """
    calls = _record_calls(obj, method, inputs, kwargs) if (inputs or kwargs) else {}
    fg = flatten(obj)
    kinds: list[type] = []
    per_module: dict[tuple, dict[type, list[int]]] = {}
    for path, leaf in zip(fg.graphdef.paths, fg.leaves(), strict=True):
        kind = type(leaf) if isinstance(leaf, Variable) else np.ndarray
        if kind not in kinds:
            kinds.append(kind)
        for cut in range(len(path)):
            totals = per_module.setdefault(path[:cut], {}).setdefault(kind, [0, 0])
            totals[0] += _count(leaf)
            totals[1] += _nbytes(leaf)
    header = ["path", "type"] + (["inputs", "outputs"] if calls else [])
    header += ["array" if k is np.ndarray else k.__name__ for k in kinds]
    table = [header]
    for path, module in obj.iter_modules():
        if depth is not None and len(path) > depth:
            continue
        row = ["/".join(map(str, path)) or "-", type(module).__name__]
        if calls:
            row += list(calls.get(path, ("", "")))
        totals = per_module.get(path, {})
        row += [f"{totals[k][0]:,} ({totals[k][1]:,} B)" if k in totals else "" for k in kinds]
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    text = "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    )
    print(text)
    return text


# The lower layers print through these (see _reprs).
_reprs.install(text=render, graphdef=render_graphdef, treescope=treescope_repr)
