"""Views: a model with some Module attributes changed, sharing the original's Variables.

``view(model, deterministic=True)`` is NNX's way to get an evaluation model
without flipping the training one: new Module objects, the same Variables, so
a step on one is seen by the other. ``with_attributes`` is the same for any
attribute; ``view_info`` lists the mode attributes a model has.
"""

from __future__ import annotations

from typing import Any

from . import _errors
from ._filters import Everything, Filter, to_predicate
from ._graph_utils import copy_structure
from ._module import Module, assign_existing
from ._variables import Variable


def _set_on_modules(
    root: Any, only: Filter, raise_if_not_found: bool, attributes: dict, fn: str
) -> None:
    missing = assign_existing(_modules(root), to_predicate(only), attributes)
    if missing and raise_if_not_found:
        raise AttributeError(
            _errors.VIEW_NOT_FOUND.format(fn=fn, root=type(root).__name__, names=missing)
        )


def _modules(root: Any):
    """``(path, module)`` for every Module reachable from ``root``, once each."""
    seen: set[int] = set()
    stack = [((), root)]
    while stack:
        path, x = stack.pop()
        if isinstance(x, Variable) or id(x) in seen:
            continue
        if isinstance(x, Module):
            seen.add(id(x))
            yield path, x
            items = list(vars(x).items())
        elif isinstance(x, dict):
            seen.add(id(x))
            items = list(x.items())
        elif isinstance(x, (list, tuple)):
            seen.add(id(x))
            items = list(enumerate(x))
        else:
            continue
        stack.extend(((*path, k), v) for k, v in reversed(items))


def with_attributes(
    node: Any, /, *, only: Filter = Everything, raise_if_not_found: bool = True, **attributes: Any
) -> Any:
    """A new graph like ``node`` whose Modules get ``attributes``; the Variables are shared.

    Only Modules that already have an attribute get it (and, with ``only``,
    only Modules matching that filter, given ``(path, module)``). An attribute
    no Module has is an AttributeError unless ``raise_if_not_found=False``.
    ``node`` itself is unchanged.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, with_attributes
    >>> class Block(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    ...         self.scale = 1.0
    >>> b = Block()
    >>> b2 = with_attributes(b, scale=2.0)
    >>> b2.scale, b.scale, b2.w is b.w
    (2.0, 1.0, True)
    """
    new = copy_structure(node)
    _set_on_modules(new, only, raise_if_not_found, attributes, "with_attributes")
    return new


def view(
    node: Any, /, *, only: Filter = Everything, raise_if_not_found: bool = True, **modes: Any
) -> Any:
    """A view of ``node`` in another mode (``deterministic``, ``use_running_average``, ...).

    The view has its own Modules with the given attributes set, and the same
    Variables as ``node``: train through one, evaluate through the other.
    ``view_info(node)`` lists what can be set.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, view
    >>> class Drop(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    ...         self.deterministic = False
    >>> model = Drop()
    >>> eval_model = view(model, deterministic=True)
    >>> eval_model.deterministic, model.deterministic, eval_model.w is model.w
    (True, False, True)
    """
    new = copy_structure(node)
    _set_on_modules(new, only, raise_if_not_found, modes, "view")
    return new


#: The mode attributes ``view_info`` lists (what ``train()`` / ``eval()`` and NNX's views set).
MODES = ("deterministic", "use_running_average", "decode", "training")


def view_info(node: Any, /, *, only: Filter = Everything) -> str:
    """What ``view`` can set on ``node``: the mode attributes each Module class has.

    Modes are the attributes named in ``MODES`` (``deterministic``,
    ``use_running_average``, ``decode``, ``training``); ``with_attributes``
    sets any other attribute the same way.

    >>> from ramie.core import Module, view_info
    >>> class Drop(Module):
    ...     def __init__(self):
    ...         self.deterministic = False
    ...         self.rate = 0.5
    >>> class Net(Module):
    ...     def __init__(self):
    ...         self.drop = Drop()
    >>> print(view_info(Net()))
    view(model, **modes) can set (mode attributes, by Module class):
      Drop (drop): deterministic=False
    """
    predicate = to_predicate(only)
    rows: dict[type, tuple[list, dict]] = {}
    for path, module in _modules(node):
        if not predicate(path, module):
            continue
        modes = {k: v for k, v in vars(module).items() if k in MODES}
        if not modes:
            continue
        paths, values = rows.setdefault(type(module), ([], {}))
        paths.append(_errors.format_path(path) or "<root>")
        for k, v in modes.items():
            values.setdefault(k, []).append(v)
    lines = ["view(model, **modes) can set (mode attributes, by Module class):"]
    for cls, (paths, values) in rows.items():
        shown = ", ".join(
            f"{k}={v[0]!r}" if len(set(v)) == 1 else f"{k}=(mixed: {sorted(set(map(repr, v)))})"
            for k, v in values.items()
        )
        lines.append(f"  {cls.__name__} ({', '.join(paths)}): {shown}")
    if len(lines) == 1:
        lines.append(f"  (no Module here has a mode attribute: {', '.join(MODES)})")
    return "\n".join(lines)


__all__ = ["view", "view_info", "with_attributes"]
