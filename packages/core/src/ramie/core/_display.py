"""Showing objects: ``display`` (treescope or a text tree) and ``summary`` (a table)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _reprs
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
        attributes = dict(vars(obj))
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
    kind_totals: dict[str, list[int]] = {}
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
        kt = kind_totals.setdefault(kind, [0, 0])
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
    footer = [
        (f"total {kind}", "", "", "", f"{count:,} values", f"{nbytes:,}")
        for kind, (count, nbytes) in kind_totals.items()
    ]
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


# The lower layers print through these (see _reprs).
_reprs.install(text=render, graphdef=render_graphdef, treescope=treescope_repr)
