"""Module: a plain Python object that holds its own state.

Attributes may be Variables, Modules, jax/numpy arrays (state), lists, dicts
and tuples of those, or hashable static values. The same Variable or Module
may be reachable by several paths, and cycles are allowed: ``split`` records
the sharing and ``merge`` rebuilds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax

from . import _containers, _errors, _filters, _markers, _plainjax, _reprs, _statics
from ._variables import Variable

_MISSING = object()
_UNRESOLVED: dict = {}
#: Called with every new Module subclass (upper layers register it with JAX here).
SUBCLASS_HOOKS: list = []
_needs_tracking = _containers.needs_tracking
_static_ok = _statics.is_ok
_is_array_swap = _containers.is_array_swap


class Module:
    """Base class of every ramie model component.

    Subclass it, create state in ``__init__`` and use it in methods. Modules
    are ordinary mutable objects: calling them updates their Variables in
    place, and submodules can be replaced at any time (model surgery).

    Lists and dicts assigned to a Module become tracked ``List``/``Dict``
    (other list/dict subclasses, e.g. ``defaultdict``, are refused). Any
    other non-array attribute is *static*: part of the structure, compiled
    into ``nn.jit``'s traces. Change a static value by assigning a new one
    (``self.scale = 9.0``), never in place; a mutable object hashed by
    identity (a plain config class) is refused (``MutableStaticError``): use a
    frozen dataclass or a NamedTuple. ``data(x)`` / ``static(x)`` (or
    ``Data[T]`` / ``Static[T]`` annotations) choose explicitly.

    Every Module is also a JAX pytree, so ``jax.jit(f)(model)``,
    ``jax.grad(loss)(model)``, ``jax.tree.map(fn, model)`` and optax work on it
    directly, with functional semantics: the function sees a copy rebuilt from
    the leaves, and what it changes comes back only in its outputs (return the
    model), never in the caller's object. ramie's transforms (``nn.jit``,
    ``nn.grad``, ...) instead update the caller's objects in place.

    >>> import jax, jax.numpy as jnp
    >>> from ramie.core import Module, Param, Rngs
    >>> class Linear(Module):
    ...     def __init__(self, din, dout, *, rngs):
    ...         self.w = Param(jax.random.uniform(rngs.params(), (din, dout)))
    ...         self.b = Param(jnp.zeros((dout,)))
    ...     def __call__(self, x):
    ...         return x @ self.w + self.b
    >>> Linear(2, 3, rngs=Rngs(0))(jnp.ones((1, 2))).shape
    (1, 3)
    """

    __slots__ = ("_ramie_tracked", "_ramie_outside", "__dict__", "__weakref__")

    #: Per class: ``{name: data or static}`` from ``Data``/``Static`` annotations, None
    #: when there are none, ``_UNRESOLVED`` until the first assignment resolves them.
    _ramie_marks: dict | None = None

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        _plainjax.register(cls)
        cls._ramie_marks = _UNRESOLVED if _markers.has_marks(cls) else None
        for hook in SUBCLASS_HOOKS:
            hook(cls)

    def __new__(cls, *args: Any, **kwargs: Any):
        obj = object.__new__(cls)
        _SET_TRACKED(obj, False)
        # Made outside every JAX transformation: it can never hold a tracer.
        _SET_OUTSIDE(obj, _plainjax.outside_any_trace())
        return obj

    def __setattr__(self, name: str, value: Any) -> None:
        marks = self._ramie_marks
        if marks is not None:
            if marks is _UNRESOLVED:
                marks = type(self)._ramie_marks = _markers.marked_fields(type(self))
            mark = marks.get(name)
            if mark is not None:
                value = mark(value)
        if _needs_tracking(value):
            value = _containers.track(value, self, name)
        elif not _static_ok(type(value)):
            if isinstance(value, jax.core.Tracer):
                _check_tracer(self, name)
            else:
                _statics.refuse(value, f"Module attribute '{type(self).__name__}.{name}'")
        if self._ramie_tracked:
            old = self.__dict__.get(name, _MISSING)
            if old is not value and not _is_array_swap(old, value):
                _containers.bump()
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if self._ramie_tracked:
            _containers.bump()
        object.__delattr__(self, name)

    def __treescope_repr__(self, path, subtree_renderer):
        return _reprs.treescope(self, path, subtree_renderer)

    def __repr__(self) -> str:
        return _reprs.text(self)

    # -- traversal -----------------------------------------------------------
    def iter_modules(self) -> Iterator[tuple[tuple, Module]]:
        """Yield ``(path, module)`` for this module and every submodule, once each.

        >>> from ramie.core import Module
        >>> class A(Module):
        ...     def __init__(self):
        ...         self.children = [Module(), Module()]
        >>> [p for p, _ in A().iter_modules()]
        [(), ('children', 0), ('children', 1)]
        """
        seen: set[int] = set()
        yield from _iter_modules(self, (), seen)

    def iter_children(self) -> Iterator[tuple[str, Module]]:
        """Yield ``(name, module)`` for the direct submodule attributes."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    # -- modes ---------------------------------------------------------------
    def set_attributes(
        self, *filters: Any, raise_if_not_found: bool = True, **attributes: Any
    ) -> None:
        """Set attributes on this module and every submodule that already has them.

        With filters (as for ``split``, applied to ``(path, module)``: a Module
        class, ``PathContains``, a callable...), only the modules that one of
        them matches are changed.

        >>> from ramie.core import Module
        >>> class Drop(Module):
        ...     def __init__(self):
        ...         self.deterministic = False
        >>> class Net(Module):
        ...     def __init__(self):
        ...         self.drop = Drop()
        >>> net = Net()
        >>> net.set_attributes(deterministic=True)
        >>> net.drop.deterministic
        True
        >>> net.set_attributes(Net, deterministic=False, raise_if_not_found=False)
        >>> net.drop.deterministic  # only Net modules were selected
        True
        """
        selected = _filters.to_predicate(filters) if filters else _filters.Everything
        missing = assign_existing(self.iter_modules(), selected, attributes)
        if missing and raise_if_not_found:
            raise AttributeError(
                _errors.SET_ATTRIBUTES_NOT_FOUND.format(
                    root=type(self).__name__,
                    which=f" matching {', '.join(map(repr, filters))}" if filters else "",
                    names=missing,
                )
            )

    def train(self, **attributes: Any) -> None:
        """Switch to training mode: ``deterministic=False``, ``use_running_average=False``.

        Only modules that have those attributes (Dropout, BatchNorm, ...) change.
        Extra keyword arguments are set the same way.
        """
        self.set_attributes(
            raise_if_not_found=False,
            deterministic=False,
            use_running_average=False,
            **attributes,
        )

    def eval(self, **attributes: Any) -> None:
        """Switch to evaluation mode: ``deterministic=True``, ``use_running_average=True``.

        In eval mode Dropout is the identity and BatchNorm uses (and never
        changes) its running statistics.
        """
        self.set_attributes(
            raise_if_not_found=False,
            deterministic=True,
            use_running_average=True,
            **attributes,
        )

    # -- intermediates -------------------------------------------------------
    def sow(
        self,
        kind: type[Variable],
        name: str,
        value: Any,
        *,
        reduce_fn: Callable[[Any, Any], Any] = lambda acc, x: (*acc, x),
        init_fn: Callable[[], Any] = tuple,
    ) -> None:
        """Record ``value`` in a Variable of ``kind`` at attribute ``name``.

        By default values accumulate in a tuple, one entry per call. Collect
        them with ``pop(model, Intermediate)``.

        >>> import jax.numpy as jnp
        >>> from ramie.core import Module, Intermediate
        >>> class M(Module):
        ...     def __call__(self, x):
        ...         self.sow(Intermediate, "h", x * 2)
        ...         return x
        >>> m = M(); _ = m(jnp.ones(2)); _ = m(jnp.ones(2))
        >>> len(m.h.value)
        2
        """
        current = vars(self).get(name, _MISSING)
        if isinstance(current, kind):
            current.value = reduce_fn(current.value, value)
        elif current is _MISSING:
            setattr(self, name, kind(reduce_fn(init_fn(), value)))
        else:
            raise AttributeError(
                f"sow(): {type(self).__name__}.{name} already holds a "
                f"{type(current).__name__}, not a {kind.__name__}; sow under another name."
            )


_SET_TRACKED = Module.__dict__["_ramie_tracked"].__set__
_SET_OUTSIDE = Module.__dict__["_ramie_outside"].__set__
_GET_OUTSIDE = Module.__dict__["_ramie_outside"].__get__
_plainjax.register(Module)


def _check_tracer(module: Module, name: str) -> None:
    try:
        outside = _GET_OUTSIDE(module)
    except AttributeError:  # built by merge/unflatten: its origin is not recorded
        return
    if outside:
        _plainjax.refuse_tracer(module, name)


_statics.exempt(Module, Variable, *_containers.ARRAY_TYPES)
_SET_DICT = Module.__dict__["__dict__"].__set__


def set_tracked(obj: Module) -> dict:
    """Mark ``obj`` as part of a cached structure; return its (tracked) attribute dict.

    From now on every structural change to it, through ``setattr``, ``delattr``
    or its ``__dict__``, bumps the structure version. Plain lists/dicts that got
    into ``__dict__`` before are converted here.
    """
    _SET_TRACKED(obj, True)
    d = obj.__dict__
    if type(d) is not _containers.Attributes:
        items = {k: _containers.track(v, obj, k) for k, v in d.items()}
        d = _containers.make_attributes(obj, items)
        _SET_DICT(obj, d)
    return d


def assign_existing(modules: Iterable[tuple[tuple, Module]], selected, attributes: dict) -> list:
    """Set ``attributes`` on the ``(path, module)`` pairs ``selected`` picks that have them.

    Returns the names no selected module had, sorted.
    """
    found = set()
    for path, module in modules:
        if not selected(path, module):
            continue
        d = vars(module)
        for name, value in attributes.items():
            if name in d:
                setattr(module, name, value)
                found.add(name)
    return sorted(set(attributes) - found)


def _iter_modules(value: Any, path: tuple, seen: set) -> Iterator[tuple[tuple, Module]]:
    if isinstance(value, Module):
        if id(value) in seen:
            return
        seen.add(id(value))
        yield path, value
        for name, child in vars(value).items():
            yield from _iter_modules(child, path + (name,), seen)
    elif isinstance(value, (list, tuple)):
        for i, child in enumerate(value):
            yield from _iter_modules(child, path + (i,), seen)
    elif isinstance(value, dict):
        for k, child in value.items():
            yield from _iter_modules(child, path + (k,), seen)
