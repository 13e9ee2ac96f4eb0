"""Modules as JAX pytrees; ``Pytree`` and ``dataclass`` for pytree-style objects.

Every Module (and so every ``Rngs``) is registered with JAX, so plain JAX
works on it directly: ``jax.jit(f)(model)``, ``jax.grad(loss)(model)``,
``jax.tree.map(fn, model)``, ``jax.tree.leaves(model)``, optax updates.
A Module flattens through the object graph (``flatten``), so a Variable
shared by two submodules is one leaf and comes back shared; the leaves are
its Variables (themselves pytrees of one array) and raw array attributes,
keyed by their path (``PathKey``). Static attributes go into the treedef.

The semantics are functional, as for any pytree: inside a plain JAX
transformation the function works on a new object rebuilt from the leaves,
so what it changes comes back only in its outputs, never in the caller's
object. ramie's own transforms (``nn.jit``, ``nn.grad``, ...) keep reference
semantics: they treat Modules as objects, not as pytrees.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from . import _flatgraph, _graph, _module
from ._caches import BoundedCache
from ._module import Module

_Slot = _flatgraph._Slot  # noqa: SLF001 - the raw-array leaf slot of a FlatGraph


class PathKey:
    """The pytree key of one leaf of a Module: its path in the object graph.

    ``str(key)`` reads like attribute access, so ``jax.tree_util.keystr`` gives
    ``.layers[0].kernel.value`` for a Param's array.

    >>> import jax, jax.numpy as jnp
    >>> from ramie.core import Module, Param
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.layers = [Param(jnp.ones(2))]
    >>> [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(M())[0]]
    ['.layers[0].value']
    """

    __slots__ = ("path",)

    def __init__(self, path: tuple):
        self.path = path

    def __eq__(self, other: object) -> bool:
        return type(other) is PathKey and self.path == other.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __str__(self) -> str:
        return "".join(
            f".{k}" if isinstance(k, str) and k.isidentifier() else f"[{k!r}]" for k in self.path
        )

    def __repr__(self) -> str:
        return f"PathKey({self.path!r})"


#: The PathKeys per GraphDef (at most 1024).
_KEYS = BoundedCache("pytree keys", 1024)


def _keys(graphdef: _flatgraph.GraphDef) -> tuple:
    keys = _KEYS.get(graphdef)
    if keys is None:
        keys = _KEYS.put(graphdef, tuple(PathKey(p) for p in graphdef.paths))
    return keys


def _children(fg: _flatgraph.FlatGraph) -> tuple:
    refs = fg.refs
    return tuple(r._value if type(r) is _Slot else r for r in refs)


def _flatten(obj: Module) -> tuple:
    fg = _graph.flatten(obj)
    return _children(fg), fg.graphdef


def _flatten_with_keys(obj: Module) -> tuple:
    fg = _graph.flatten(obj)
    return tuple(zip(_keys(fg.graphdef), _children(fg), strict=True)), fg.graphdef


def _unflatten(graphdef: _flatgraph.GraphDef, children) -> Module:
    return _graph.unflatten(graphdef, list(children))


def register(cls: type) -> None:
    """Register the Module subclass ``cls`` as a JAX pytree (done for every subclass)."""
    jax.tree_util.register_pytree_with_keys(cls, _flatten_with_keys, _unflatten, _flatten)


def _register_tree(cls: type) -> None:
    register(cls)
    for sub in cls.__subclasses__():
        _register_tree(sub)


_register_tree(Module)
_module.SUBCLASS_HOOKS.append(register)


class Pytree(Module):
    """Base class for pytree-style objects that are not layers (NNX's ``nnx.Pytree``).

    In ramie every object in a graph is a Module, so ``Pytree`` is a Module
    (``isinstance(p, Module)`` is True): it flattens as a pytree, works with
    every transform, and follows the same data/static rules. Annotate
    attributes with ``Data[...]``/``Static[...]`` or assign ``data(...)``/
    ``static(...)`` to choose explicitly.

    >>> import jax
    >>> from ramie.core import Pytree, data
    >>> class Foo(Pytree):
    ...     def __init__(self):
    ...         self.x = data(42)
    ...         self.name = "hello"
    >>> [int(x) for x in jax.tree.leaves(Foo())]
    [42]
    """


def dataclass(cls: type | None = None, /, **kwargs: Any) -> Any:
    """``dataclasses.dataclass`` for Pytree/Module subclasses (NNX's ``nnx.dataclass``).

    Fields annotated ``Data[...]`` become data, ``Static[...]`` static; other
    fields follow ramie's rules (arrays and Variables are data, hashable
    Python values static). ``eq`` defaults to False, so instances keep
    identity comparison and hashing like every Module (NNX compares field by
    field; pass ``eq=True`` for that).

    >>> import jax, jax.numpy as jnp
    >>> from ramie.core import Data, Param, Pytree, dataclass
    >>> @dataclass
    ... class Point(Pytree):
    ...     x: Data[float]
    ...     w: Param[jax.Array]
    ...     name: str = "p"
    >>> p = Point(1.0, Param(jnp.ones(2)))
    >>> [float(v.sum()) for v in jax.tree.leaves(p)], p.name
    ([1.0, 2.0], 'p')
    """
    kwargs.setdefault("eq", False)
    kwargs.setdefault("repr", False)

    def wrap(c: type) -> type:
        if not (isinstance(c, type) and issubclass(c, Module)):
            raise TypeError(
                f"ramie.core.dataclass decorates subclasses of Pytree or Module; got "
                f"{getattr(c, '__name__', c)!r}. Use dataclasses.dataclass for other classes."
            )
        return dataclasses.dataclass(c, **kwargs)

    return wrap if cls is None else wrap(cls)
