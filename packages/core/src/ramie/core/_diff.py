"""What changed between two GraphDefs, in words a user can act on.

Transforms compare the structure of their input objects before and after the
user's function ran. New Variables (``sow``) can be propagated; anything else
(a replaced submodule, a changed static attribute, a deleted attribute) has
to be reported with its path.
"""

from __future__ import annotations

import dataclasses

from ._errors import format_path
from ._flatgraph import GraphDef
from ._nodes import ARRAY, DICT, LIST, MODULE, REF, STATIC, TUPLE, VAR, children


@dataclasses.dataclass(frozen=True)
class Change:
    """One structural difference: where, what kind (added/removed/changed), and what."""

    path: tuple
    kind: str
    detail: str
    adds_variables: bool = False

    def __str__(self) -> str:
        return f"'{format_path(self.path)}': {self.kind} {self.detail}"


def _a(name: str) -> str:
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name


def describe(node: tuple) -> str:
    """A short description of what a GraphDef node holds ("a Param", "a Linear module")."""
    code = node.code
    if code == VAR:
        return _a(f"{node.cls.__name__} Variable")
    if code == MODULE:
        return _a(f"{node.cls.__name__} module")
    if code == ARRAY:
        return "an array"
    if code == REF:
        return "a shared reference"
    if code == LIST:
        return f"a list of {len(node.items)}"
    if code == DICT:
        return f"a dict with keys {[k for k, _ in node.items]}"
    if code == TUPLE:
        return _a(f"{node.cls.__name__} of {len(node.items)}")
    return f"{node.value!r:.60}"


def only_variables(node: tuple) -> bool:
    """True when ``node`` is a Variable or a container holding only Variables."""
    code = node.code
    if code == VAR:
        return True
    if code in (LIST, DICT, TUPLE):
        return all(only_variables(c) for c in children(node))
    return False


def changes(before: GraphDef, after: GraphDef) -> list[Change]:
    """Every structural difference from ``before`` to ``after``, in walk order.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, graphdef
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    ...         self.training = True
    >>> m = M()
    >>> a = graphdef(m)
    >>> m.training = False
    >>> [str(c) for c in changes(a, graphdef(m))]
    ["'training': changed from True to False"]
    """
    out: list[Change] = []
    _diff(before.node, after.node, (), out)
    return out


def additions_only(found: list[Change]) -> bool:
    """True when every change adds new Variables (what ``sow`` does), nothing else."""
    return all(c.adds_variables for c in found)


def _named(children) -> dict:
    return dict(children)


def _diff(a: tuple, b: tuple, path: tuple, out: list) -> None:
    if a == b:
        return
    ca, cb = a.code, b.code
    if ca != cb or (ca in (MODULE, VAR, TUPLE, STATIC) and a.cls is not b.cls):
        out.append(Change(path, "changed", f"from {describe(a)} to {describe(b)}"))
        return
    if ca == MODULE or ca == DICT:
        ka, kb = _named(a[-1]), _named(b[-1])
        for k, node in ka.items():
            if k not in kb:
                out.append(Change(path + (k,), "removed", f"({describe(node)})"))
            else:
                _diff(node, kb[k], path + (k,), out)
        for k, node in kb.items():
            if k not in ka:
                out.append(
                    Change(path + (k,), "added", f"({describe(node)})", only_variables(node))
                )
        return
    if ca == LIST or ca == TUPLE:
        la, lb = a[-1], b[-1]
        for i, (x, y) in enumerate(zip(la, lb, strict=False)):
            _diff(x, y, path + (i,), out)
        for i in range(len(lb), len(la)):
            out.append(Change(path + (i,), "removed", f"({describe(la[i])})"))
        for i in range(len(la), len(lb)):
            out.append(Change(path + (i,), "added", f"({describe(lb[i])})"))
        return
    if ca == STATIC:
        out.append(Change(path, "changed", f"from {a.value!r:.60} to {b.value!r:.60}"))
    elif ca == VAR:
        out.append(
            Change(path, "changed", f"metadata from {dict(a.metadata)} to {dict(b.metadata)}")
        )
    elif ca == REF:
        out.append(Change(path, "changed", "which object it shares"))
