"""NNX's graph utilities: walking, mapping, packing and calling object graphs.

``iter_graph`` and ``recursive_map`` visit every Module, container, Variable
and static value once (shared ones once), children before their parent.
``map`` and ``as_abstract`` rebuild a graph with new leaves; ``unpack`` bundles
a State with its GraphDef; ``prefix`` turns filters into a State of per-leaf
values (axes, shardings); ``GraphDef.apply`` / ``call`` run a method as a pure
function of ``(graphdef, state)``; ``capture`` collects what a call sowed.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax

from . import _errors, _flatgraph
from ._api import merge, pop, split, state
from ._codegen import rebuild_tuple as _rebuild_tuple
from ._containers import Dict, List
from ._filters import Filter, to_predicate
from ._flatgraph import GraphDef
from ._module import _SET_TRACKED, Module
from ._state import GraphState, State, _flat_of, insert
from ._variables import Intermediate, Variable

Path = tuple


def _children(node: Any) -> list[tuple[Any, Any]] | None:
    """``[(key, child)]`` of a Module, list, dict or tuple; None for a leaf."""
    if isinstance(node, Module):
        return list(vars(node).items())
    if isinstance(node, dict):
        return list(node.items())
    if isinstance(node, (list, tuple)):
        return list(enumerate(node))
    return None


def _is_shared_kind(node: Any) -> bool:
    # Objects whose identity the graph keeps: visited once however often reached.
    return isinstance(node, (Module, Variable, list, dict))


# -- iter_graph ------------------------------------------------------------------------
def iter_graph(node: Any, /) -> Iterator[tuple[Path, Any]]:
    """Yield ``(path, value)`` for every node and leaf of ``node``, the root last.

    Children come before their parent (post-order), in attribute / item order.
    A Module, Variable, list or dict reached by several paths is yielded once,
    at the first. Leaves include Variables, arrays and static values.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, iter_graph
    >>> class Linear(Module):
    ...     def __init__(self):
    ...         self.din = 2
    ...         self.w = Param(jnp.ones((2, 3)))
    >>> m = Linear()
    >>> for path, value in iter_graph([m, m]):
    ...     print(path, type(value).__name__)
    (0, 'din') int
    (0, 'w') Param
    (0,) Linear
    () list
    """
    seen: set[int] = set()
    stack: list[tuple[Path, Any, bool]] = [((), node, False)]
    while stack:
        path, value, done = stack.pop()
        if done:
            yield path, value
            continue
        if _is_shared_kind(value):
            if id(value) in seen:
                continue
            seen.add(id(value))
        children = None if isinstance(value, Variable) else _children(value)
        if children is None:
            yield path, value
            continue
        stack.append((path, value, True))
        for key, child in reversed(children):
            stack.append(((*path, key), child, False))


# -- structural copies -----------------------------------------------------------------
def copy_structure(node: Any) -> Any:
    """A new graph with new Modules and containers but the same Variables and arrays.

    Sharing and cycles are kept. This is the base of ``recursive_map``,
    ``view`` and ``with_attributes``: the copy's Variables *are* the original's,
    so training one trains the other.
    """
    memo: dict[int, Any] = {}

    def copy(x: Any) -> Any:
        if isinstance(x, Variable) or not isinstance(x, (Module, list, dict, tuple)):
            return x
        if id(x) in memo:
            return memo[id(x)]
        if isinstance(x, Module):
            new = object.__new__(type(x))
            _SET_TRACKED(new, False)
            memo[id(x)] = new
            new.__dict__.update({k: copy(v) for k, v in vars(x).items()})
            return new
        if isinstance(x, list):
            new_list = List()
            memo[id(x)] = new_list
            builtins.list.extend(new_list, [copy(v) for v in x])
            return new_list
        if isinstance(x, dict):
            new_dict = Dict()
            memo[id(x)] = new_dict
            builtins.dict.update(new_dict, {k: copy(v) for k, v in x.items()})
            return new_dict
        return _rebuild_tuple(type(x), [copy(v) for v in x])

    return copy(node)


# -- recursive_map ---------------------------------------------------------------------
def _set_child(parent: Any, key: Any, value: Any) -> Any:
    """Put ``value`` at ``key`` of ``parent``; returns the parent (tuples are rebuilt)."""
    if isinstance(parent, Module):
        setattr(parent, key, value)
    elif isinstance(parent, (list, dict)):
        parent[key] = value
    else:
        items = list(parent)
        items[key] = value
        return _rebuild_tuple(type(parent), items)
    return parent


def recursive_map(f: Callable[[Path, Any], Any], node: Any, /) -> Any:
    """Apply ``f(path, value)`` to every node and leaf, children first; return the new root.

    ``node`` is not changed: ``f`` works on a copy of its Modules and
    containers that shares its Variables (see ``copy_structure``). What ``f``
    returns replaces the value in its parent. Shared values are mapped once
    and stay shared; a Module that (through its children) reaches itself is
    an error, because ``f`` would need its result before it exists.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, recursive_map
    >>> class Block(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    ...         self.scale = 1.0
    >>> def double_scales(path, value):
    ...     return value * 2 if path and path[-1] == "scale" else value
    >>> recursive_map(double_scales, Block()).scale
    2.0
    """
    root = copy_structure(node)
    done: dict[int, Any] = {}
    open_: set[int] = set()

    def visit(path: Path, value: Any) -> Any:
        key = id(value)
        shared = _is_shared_kind(value)
        if shared and key in done:
            return done[key]
        if shared and key in open_:
            raise _errors.GraphError(
                _errors.RECURSIVE_MAP_CYCLE.format(
                    path=_errors.format_path(path), type_name=type(value).__name__
                )
            )
        children = None if isinstance(value, Variable) else _children(value)
        if children is not None:
            open_.add(key)
            for k, child in children:
                new = visit((*path, k), child)
                if new is not child:
                    value = _set_child(value, k, new)
            open_.discard(key)
        result = f(path, value)
        if shared:
            done[key] = result
        return result

    return visit((), root)


# -- map / as_abstract -------------------------------------------------------------------
def map(f: Callable[[Path, Any], Any], node: Any, /) -> Any:  # noqa: A001 (NNX's name)
    """A new graph like ``node`` whose leaves are ``f(path, leaf)``.

    Each leaf is given as ``split`` holds it (a copy of its Variable, or a raw
    array); ``f`` may return a Variable or a plain value, which then goes into
    a Variable of the recorded kind. Sharing is kept; ``node`` is unchanged.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, map
    >>> class Linear(Module):
    ...     def __init__(self):
    ...         self.kernel = Param(jnp.ones((2, 3)))
    >>> zeroed = map(lambda path, v: v.replace(jnp.zeros_like(v.value)), Linear())
    >>> float(zeroed.kernel.value.sum())
    0.0
    """
    graphdef, flat = split(node)
    mapped = State.from_flat_state({p: f(p, leaf) for p, leaf in flat.flat_state().items()})
    return merge(graphdef, mapped)


def _abstract(x: Any) -> Any:
    if isinstance(x, Variable):
        return x.replace(_abstract(x._value))
    if isinstance(x, jax.ShapeDtypeStruct) or not hasattr(x, "shape"):
        return x
    sharding = getattr(x, "sharding", None)
    if not isinstance(sharding, jax.sharding.Sharding):
        sharding = None
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)


def as_abstract(node: Any, /) -> Any:
    """A copy of ``node`` (a graph or a State) whose arrays become ``jax.ShapeDtypeStruct`` objects.

    Shapes, dtypes and (for ``jax.Array``) shardings are kept, values dropped:
    the form ``eval_shape`` gives, for restoring checkpoints or planning
    shardings without real weights.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, as_abstract
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones((2, 3)))
    >>> w = as_abstract(M()).w.value
    >>> type(w).__name__, w.shape, w.dtype
    ('ShapeDtypeStruct', (2, 3), dtype('float32'))
    """
    if isinstance(node, Mapping) and not isinstance(node, Dict):
        return State.from_flat_state({p: _abstract(v) for p, v in _flat_of(node).items()})
    return map(lambda _, leaf: _abstract(leaf), node)


# -- unpack / merge_state / prefix ---------------------------------------------------------
def unpack(node: Any, /, *filters: Filter) -> GraphState | tuple[GraphState, ...]:
    """Like ``split``, but each State carries the GraphDef: ``merge(*unpack(node))``.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, BatchStat, merge, unpack
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    ...         self.m = BatchStat(jnp.zeros(2))
    >>> params, stats = unpack(M(), Param, BatchStat)
    >>> type(merge(params, stats)).__name__, list(params)
    ('M', ['w'])
    """
    graphdef, *states = split(node, *filters)
    packed = tuple(GraphState(s, graphdef=graphdef) for s in states)
    return packed[0] if len(packed) == 1 else packed


def merge_state(state: Mapping, /, *states: Mapping, replace: bool = False) -> State:
    """One State holding the leaves of all; a path in several takes the last one's leaf.

    With ``replace=False`` (the default) the result holds copies of the
    Variables; with ``replace=True`` it holds the given Variable objects.

    >>> import jax.numpy as jnp
    >>> from ramie.core import State, Param, merge_state
    >>> a = State({"w": Param(jnp.zeros(1)), "b": Param(jnp.zeros(1))})
    >>> b = State({"w": Param(jnp.ones(1))})
    >>> merged = merge_state(a, b)
    >>> sorted(merged), float(merged.w.value[0])
    (['b', 'w'], 1.0)
    """
    out = State()
    for s in (state, *states):
        for path, leaf in _flat_of(s).items():
            if isinstance(leaf, Variable) and not replace:
                leaf = leaf.replace()
            insert(out, path, leaf)
    return out


def prefix(node: Any, filter_map: Mapping[Filter, Any] | Callable[[Path, Any], Any], /) -> State:
    """A State with ``node``'s paths whose leaves are per-leaf values chosen by filters.

    ``filter_map`` is ``{filter: value}`` (the first matching filter gives a
    leaf's value; a leaf no filter matches is an error naming it) or a
    callable ``(path, leaf) -> value``. The result is a pytree prefix of
    ``state(node)``: use it as ``in_axes`` / ``out_shardings`` for that State.

    >>> import jax, jax.numpy as jnp
    >>> from ramie.core import Module, Param, BatchStat, prefix, state
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.full((3,), 2.0))
    ...         self.b = BatchStat(jnp.arange(3.0))
    >>> m = M()
    >>> axes = prefix(m, {Param: None, BatchStat: 0})
    >>> dict(axes)
    {'w': None, 'b': 0}
    >>> jax.vmap(lambda s: s["w"].value * s["b"].value, in_axes=(axes,))(state(m)).shape
    (3, 3)
    """
    flat = state(node).flat_state()
    if callable(filter_map) and not isinstance(filter_map, Mapping):
        return State.from_flat_state({p: filter_map(p, leaf) for p, leaf in flat.items()})
    rules = [(to_predicate(f), value) for f, value in filter_map.items()]
    out: dict = {}
    for path, leaf in flat.items():
        for predicate, value in rules:
            if predicate(path, leaf):
                out[path] = value
                break
        else:
            raise _errors.FilterError(
                _errors.PREFIX_UNMATCHED.format(
                    path=_errors.format_path(path),
                    kind=type(leaf).__name__,
                    filters=", ".join(repr(f) for f in filter_map),
                )
            )
    return State.from_flat_state(out)


# -- GraphDef.apply / call -----------------------------------------------------------------
class _PureCall:
    """``graphdef.apply(state)`` / ``call((graphdef, state))``: method calls as pure functions.

    Attribute and item access walk to a submodule or method; calling runs it
    on a fresh merge and returns ``(output, (graphdef, state))`` of the
    merged object afterwards.
    """

    __slots__ = ("_graphdef", "_states", "_steps")

    def __init__(self, graphdef: GraphDef, states: tuple, steps: tuple = ()):
        self._graphdef = graphdef
        self._states = states
        self._steps = steps

    def __getattr__(self, name: str) -> _PureCall:
        if name.startswith("__"):
            raise AttributeError(name)
        return _PureCall(self._graphdef, self._states, (*self._steps, ("attr", name)))

    def __getitem__(self, key: Any) -> _PureCall:
        return _PureCall(self._graphdef, self._states, (*self._steps, ("item", key)))

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[Any, tuple[GraphDef, State]]:
        obj = merge(self._graphdef, *self._states)
        target = obj
        for kind, key in self._steps:
            target = getattr(target, key) if kind == "attr" else target[key]
        out = target(*args, **kwargs)
        graphdef, new_state = split(obj)
        return out, (graphdef, new_state)


def apply(graphdef: GraphDef, state: Mapping, /, *states: Mapping) -> _PureCall:
    """``graphdef.apply(state)(*args)``: call the merged object; ``(out, (graphdef, state))``.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, split
    >>> class Scale(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.full((2,), 3.0))
    ...     def __call__(self, x):
    ...         return x * self.w
    >>> graphdef, state = split(Scale())
    >>> y, (graphdef, state) = graphdef.apply(state)(jnp.ones(2))
    >>> y.tolist()
    [3.0, 3.0]
    """
    return _PureCall(graphdef, (state, *states))


_flatgraph.APPLY[0] = apply


def call(graphdef_state: tuple, /) -> _PureCall:
    """``call((graphdef, state)).method(*args)``, as ``graphdef.apply(state).method(*args)``."""
    graphdef, *states = graphdef_state
    return _PureCall(graphdef, tuple(states))


# -- capture ---------------------------------------------------------------------------
def _module_of(fn: Any, args: tuple) -> Module:
    if isinstance(fn, Module):
        return fn
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, Module):
        return owner
    for a in args:
        if isinstance(a, Module):
            return a
    raise TypeError(_errors.CAPTURE_NO_MODULE.format(fn=getattr(fn, "__name__", repr(fn))))


def capture(fn: Callable, /, *filters: Filter) -> Callable[..., tuple[Any, State]]:
    """Wrap ``fn`` so a call returns ``(output, captured)``: what the call sowed.

    ``fn`` is a Module, a bound method of one, or a function whose first
    Module argument is the model. The values sown during the call (by default
    ``Intermediate``; pass filters for other kinds) are popped from the model
    and returned as one State (several with several filters); values of those
    kinds already in the model are dropped first, so only this call's values
    come back (choose the kinds that are sown, not the model's own state).

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Intermediate, capture
    >>> class M(Module):
    ...     def __call__(self, x):
    ...         self.sow(Intermediate, "h", x * 2)
    ...         return x + 1
    >>> m = M()
    >>> y, captured = capture(m)(jnp.ones(2))
    >>> captured.h.value[0].tolist(), hasattr(m, "h")
    ([2.0, 2.0], False)
    """
    chosen = filters or (Intermediate,)

    def captured(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        model = _module_of(fn, args)
        pop(model, *chosen)
        out = fn(*args, **kwargs)
        return out, pop(model, *chosen)

    return captured


__all__ = [
    "apply",
    "as_abstract",
    "call",
    "capture",
    "copy_structure",
    "iter_graph",
    "map",
    "merge_state",
    "prefix",
    "recursive_map",
    "unpack",
]
