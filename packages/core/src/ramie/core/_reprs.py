"""Repr hooks: how objects of the lower layers print, filled in by ``_display``.

``Module``, ``State``, ``GraphDef`` and ``Variable`` print through these
functions, so the modules defining them never import ``_display``, which sits
on top of them all (it walks graphs to draw them). ``_display`` installs its
renderers when it is imported, which ``import ramie.core`` always does; until
then objects print as ``object.__repr__`` would.

>>> from ramie.core import _reprs
>>> class Box:
...     def __repr__(self):
...         return _reprs.text(self)
>>> saved = dict(_reprs._HOOKS)
>>> _reprs.install(text=lambda obj: "a box")
>>> repr(Box())
'a box'
>>> _reprs.install(**saved)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_HOOKS: dict[str, Callable[..., Any]] = {}


def install(**hooks: Callable[..., Any]) -> None:
    """Set the renderers: ``text(obj)``, ``graphdef(g)``, ``treescope(obj, path, renderer)``."""
    _HOOKS.update(hooks)


def text(obj: Any) -> str:
    """The text tree of a Module or State (``repr``)."""
    hook = _HOOKS.get("text")
    return object.__repr__(obj) if hook is None else hook(obj)


def graphdef(obj: Any) -> str:
    """The short description of a GraphDef (``repr``)."""
    hook = _HOOKS.get("graphdef")
    return object.__repr__(obj) if hook is None else hook(obj)


def treescope(obj: Any, path: str | None, subtree_renderer: Any) -> Any:
    """Render a Module or Variable for treescope (``__treescope_repr__``)."""
    hook = _HOOKS.get("treescope")
    return NotImplemented if hook is None else hook(obj, path, subtree_renderer)
