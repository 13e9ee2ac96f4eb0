"""State: the nested mapping of Variables that crosses into pure JAX.

A State is a ``dict`` subclass whose keys are attribute names, list indices
(ints) or dict keys, and whose leaves are Variables or raw arrays. It is a
registered pytree: ``jax.tree.map`` sees the arrays inside the Variables, and
``jax.jit``/``jax.grad`` accept and return States.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import jax

from . import _errors, _reprs
from ._filters import Filter, Path, check_everything_last, to_predicate
from ._variables import Variable, check_leaf


def _sorted_keys(d: dict) -> list:
    try:
        return sorted(d)
    except TypeError:
        return sorted(d, key=lambda k: (0, k, "") if isinstance(k, int) else (1, 0, repr(k)))


class State(dict):
    """A nested mapping from keys to Variables (or raw arrays) and sub-States.

    Attribute access reaches entries: ``state.linear1.kernel`` is
    ``state["linear1"]["kernel"]``.

    >>> import jax, jax.numpy as jnp
    >>> from ramie.core import State, Param
    >>> s = State({"layer": {"w": Param(jnp.ones(2))}})
    >>> s.layer.w.value.shape
    (2,)
    >>> doubled = jax.tree.map(lambda x: 2 * x, s)
    >>> float(doubled.layer.w.value[0])
    2.0
    """

    __slots__ = ()

    def __init__(self, mapping: Mapping | None = None, /, **kwargs: Any):
        super().__init__()
        items = dict(mapping or {}, **kwargs)
        for k, v in items.items():
            dict.__setitem__(self, k, _as_state(v))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"State has no entry {name!r}; its keys are {list(self)}."
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __setitem__(self, key: Hashable, value: Any) -> None:
        dict.__setitem__(self, key, _as_state(value))

    def __repr__(self) -> str:
        return _reprs.text(self)

    # -- flat views ----------------------------------------------------------
    def flat_state(self) -> dict[Path, Any]:
        """Every leaf keyed by its path tuple, in insertion order.

        >>> import jax.numpy as jnp
        >>> from ramie.core import State, Param
        >>> list(State({"a": {"b": Param(jnp.ones(1))}}).flat_state())
        [('a', 'b')]
        """
        out: dict[Path, Any] = {}
        _flatten_into(self, (), out)
        return out

    def paths(self) -> list[Path]:
        """The paths of every leaf, in insertion order."""
        return list(self.flat_state())

    def leaves(self) -> list[Any]:
        """Every leaf (Variable or raw array), in insertion order."""
        return list(self.flat_state().values())

    @classmethod
    def from_flat_state(cls, flat: Mapping[Path, Any]) -> State:
        """Build a State from ``{path tuple: leaf}`` (the inverse of ``flat_state``)."""
        root = cls()
        for path, leaf in flat.items():
            insert(root, path, leaf)
        return root

    # -- filtering -----------------------------------------------------------
    def filter(self, first: Filter, /, *rest: Filter) -> State | tuple[State, ...]:
        """The leaves each filter matches, as one State per filter.

        Unlike ``split`` this is not exhaustive: unmatched leaves are dropped.
        A leaf goes to the first filter that matches it.

        >>> import jax.numpy as jnp
        >>> from ramie.core import State, Param, BatchStat
        >>> s = State({"w": Param(jnp.ones(1)), "m": BatchStat(jnp.zeros(1))})
        >>> list(s.filter(Param))
        ['w']
        """
        check_everything_last((first, *rest), "State.filter")
        preds = [to_predicate(f) for f in (first, *rest)]
        outs = [State() for _ in preds]
        for path, leaf in self.flat_state().items():
            for pred, out in zip(preds, outs, strict=True):
                if pred(path, leaf):
                    insert(out, path, leaf)
                    break
        return outs[0] if not rest else tuple(outs)

    @classmethod
    def merge(cls, *states: Mapping) -> State:
        """Combine several States (e.g. the parts ``split`` returned) into one."""
        root = cls()
        for s in states:
            for path, leaf in _flat_of(s).items():
                insert(root, path, leaf)
        return root


def _as_state(v: Any) -> Any:
    if isinstance(v, Mapping) and not isinstance(v, State):
        return State(v)
    return v


def _flatten_into(d: Mapping, prefix: Path, out: dict) -> None:
    for k, v in d.items():
        if isinstance(v, Mapping):
            _flatten_into(v, prefix + (k,), out)
        else:
            out[prefix + (k,)] = v


def _flat_of(d: Mapping) -> dict[Path, Any]:
    out: dict[Path, Any] = {}
    _flatten_into(d, (), out)
    return out


def insert(root: dict, path: Path, leaf: Any) -> None:
    """Put ``leaf`` at ``path`` in the nested State ``root``, making sub-States."""
    d = root
    for k in path[:-1]:
        sub = d.get(k)
        if sub is None:
            sub = State()
            dict.__setitem__(d, k, sub)
        d = sub
    dict.__setitem__(d, path[-1], leaf)


def _state_flatten_with_keys(s: State):
    keys = _sorted_keys(s)
    return [(jax.tree_util.DictKey(k), s[k]) for k in keys], tuple(keys)


def _state_flatten(s: State):
    keys = _sorted_keys(s)
    return list(map(s.__getitem__, keys)), tuple(keys)


_new_dict = dict.__new__
_update = dict.update


def _state_unflatten(keys, children):
    s = _new_dict(State)
    _update(s, zip(keys, children, strict=True))
    return s


jax.tree_util.register_pytree_with_keys(
    State, _state_flatten_with_keys, _state_unflatten, _state_flatten
)


# -- pure dicts --------------------------------------------------------------
def to_pure_dict(state: Mapping) -> dict:
    """A plain nested ``dict`` of arrays: Variables replaced by their values.

    List indices stay int keys. This is the form serialization and other JAX
    libraries work with.

    >>> import jax.numpy as jnp
    >>> from ramie.core import State, Param, to_pure_dict
    >>> to_pure_dict(State({"w": Param(jnp.zeros(()))}))
    {'w': Array(0., dtype=float32)}
    """
    out = {}
    for k, v in state.items():
        if isinstance(v, Mapping):
            out[k] = to_pure_dict(v)
        elif isinstance(v, Variable):
            out[k] = v._value
        else:
            out[k] = v
    return out


def _match_key(pure: Mapping, key: Hashable) -> Any:
    if key in pure:
        return pure[key]
    if isinstance(key, int) and str(key) in pure:
        return pure[str(key)]
    return _MISSING


_MISSING = object()


def replace_by_pure_dict(state: State, pure: Mapping) -> None:
    """Write the arrays of a pure nested dict into ``state``, in place.

    Leaves of ``state`` keep their Variable kind and metadata; only values are
    replaced. Int keys (list indices) also match string keys ``"0"``, ``"1"``…
    as they come back from formats with string-only keys.

    >>> import jax.numpy as jnp
    >>> from ramie.core import State, Param, replace_by_pure_dict
    >>> s = State({"layers": {0: {"w": Param(jnp.zeros(2))}}})
    >>> replace_by_pure_dict(s, {"layers": {"0": {"w": jnp.ones(2)}}})
    >>> float(s.layers[0].w.value.sum())
    2.0
    """
    missing: list[str] = []
    extra: list[str] = []
    _replace(state, pure, (), missing, extra)
    if extra:
        raise _errors.GraphError(
            _errors.REPLACE_EXTRA_KEYS.format(paths=_errors.format_paths(extra))
        )
    if missing:
        raise _errors.GraphError(
            _errors.REPLACE_MISSING_KEYS.format(paths=_errors.format_paths(missing))
        )


def _replace(state: dict, pure: Mapping, prefix: Path, missing: list, extra: list) -> None:
    used = set()
    for k, v in state.items():
        item = _match_key(pure, k)
        path = prefix + (k,)
        if item is _MISSING:
            missing.append(_errors.format_path(path))
            continue
        used.add(k if k in pure else str(k))
        if isinstance(v, Mapping):
            if not isinstance(item, Mapping):
                missing.append(_errors.format_path(path) + " (a mapping was expected)")
                continue
            _replace(v, item, path, missing, extra)
        else:
            if isinstance(item, Variable):
                item = item._value
            check_leaf(item, f"The pure dict entry at '{_errors.format_path(path)}'")
            new = v.replace(item) if isinstance(v, Variable) else item
            dict.__setitem__(state, k, new)
    for k in pure:
        if k not in used:
            extra.append(_errors.format_path(prefix + (k,)))


class GraphState(State):
    """A State that carries the GraphDef it belongs to (what ``unpack`` returns).

    ``merge(graph_state, ...)`` needs no separate GraphDef. ``jax.tree.map``
    keeps the GraphDef (it is static, part of the tree structure).

    >>> import jax.numpy as jnp
    >>> from ramie.core import Module, Param, merge, unpack
    >>> class M(Module):
    ...     def __init__(self):
    ...         self.w = Param(jnp.ones(2))
    >>> s = unpack(M())
    >>> type(merge(s)).__name__
    'M'
    """

    __slots__ = ("graphdef",)

    def __init__(self, mapping: Mapping | None = None, /, *, graphdef: Any = None, **kwargs: Any):
        super().__init__(mapping, **kwargs)
        object.__setattr__(self, "graphdef", graphdef)


def _graph_state_flatten_with_keys(s: GraphState):
    children, keys = _state_flatten_with_keys(s)
    return children, (keys, s.graphdef)


def _graph_state_flatten(s: GraphState):
    children, keys = _state_flatten(s)
    return children, (keys, s.graphdef)


def _graph_state_unflatten(aux, children):
    keys, graphdef = aux
    s = _new_dict(GraphState)
    _update(s, zip(keys, children, strict=True))
    object.__setattr__(s, "graphdef", graphdef)
    return s


jax.tree_util.register_pytree_with_keys(
    GraphState, _graph_state_flatten_with_keys, _graph_state_unflatten, _graph_state_flatten
)
