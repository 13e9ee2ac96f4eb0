"""Moving ramie objects across a JAX transform boundary.

Every transform does the same three things around the user's function:

1. *extract*: find the ramie objects (Modules, Variables) among the
   arguments, flatten them together (so references shared between arguments
   stay shared) into a GraphDef and a flat list of leaf values;
2. inside the JAX transform, *rebuild* new objects from those leaves, run the
   user's function on them, and collect their leaf values afterwards (plus
   any objects the function returns);
3. outside, *propagate*: write the new leaf values back into the caller's
   objects, and rebuild returned objects.

Only leaves and hashable structure cross the boundary, so JAX never sees a
Module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax

from ramie import core
from ramie.core import extend

from . import _errors

GRAPH_TYPES = (core.Module, core.Variable)


def is_graph(x: Any) -> bool:
    return isinstance(x, GRAPH_TYPES)


class Static:
    """A leafless pytree carrying a (comparable) Python value through a JAX transform."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is Static and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"Static({self.value!r})"


jax.tree_util.register_pytree_node(Static, lambda s: ((), s.value), lambda v, _: Static(v))


# -- records crossing the boundary ------------------------------------------------
class CallSpec(NamedTuple):
    """How to put an ``(args, kwargs)`` pytree back together (hashable)."""

    treedef: Any  # of ``(args, kwargs)``, objects and plain leaves alike as leaves
    slots: tuple[int, ...]  # per flat position: the object's index, or -1 for a plain leaf


class Leaves(NamedTuple):
    """The two kinds of leaves a transform passes in: object values and plain leaves."""

    values: list  # the objects' leaf values, in ``FlatGraph.paths`` order
    leaves: list  # the other (plain pytree) leaves of the arguments


class Traced(NamedTuple):
    """What ``call_traced`` returns from inside a JAX transform (a pytree)."""

    graphdef: Any  # the objects' new GraphDef, or None when the structure is unchanged
    values: list  # the objects' leaf values after the call
    meta: Any  # ``export``'s marker: None when the output holds no objects
    payload: Any  # the user's output, objects replaced by markers


# -- extract / rebuild ---------------------------------------------------------
class Extracted:
    """The ramie objects found in a pytree of arguments, and everything else.

    ``objs`` are the objects in order of appearance (each once), ``fg`` their
    joint flattened graph, ``leaves`` the other pytree leaves, and ``spec``
    the hashable recipe (treedef + which leaf is which object) to put them
    back together.
    """

    __slots__ = ("objs", "fg", "leaves", "spec")

    def __init__(self, tree: Any):
        flat, treedef = jax.tree_util.tree_flatten(tree, is_leaf=is_graph)
        objs: list = []
        index: dict[int, int] = {}
        slots: list = []
        leaves: list = []
        for x in flat:
            if isinstance(x, GRAPH_TYPES):
                i = index.get(id(x))
                if i is None:
                    i = index[id(x)] = len(objs)
                    objs.append(x)
                slots.append(i)
            else:
                slots.append(-1)
                leaves.append(x)
        self.objs = tuple(objs)
        self.fg = extend.flatten(self.objs)
        self.leaves = leaves
        self.spec = CallSpec(treedef, tuple(slots))


def rebuild(spec: CallSpec, objs: Sequence, leaves: Sequence) -> Any:
    """Put objects and leaves back into the argument pytree (inverse of ``Extracted``)."""
    it = iter(leaves)
    return spec.treedef.unflatten([objs[i] if i >= 0 else next(it) for i in spec.slots])


def position_names(spec: CallSpec) -> list[str]:
    """A readable name (``args[0]``, ``kwargs['model']``) per flat position of ``spec``."""
    treedef = spec.treedef
    skeleton = treedef.unflatten(list(range(treedef.num_leaves)))
    return [_errors.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(skeleton)[0]]


def object_names(spec: CallSpec, count: int) -> list[str]:
    """A readable name per object (where it first appears) for messages."""
    names = [""] * count
    for name, i in zip(position_names(spec), spec.slots, strict=True):
        if i >= 0 and not names[i]:
            names[i] = name
    return names


def path_name(names: Sequence[str], path: tuple) -> str:
    """A leaf path of joined objects (its first key the object's index) as ``args[0]/w``.

    >>> path_name(["args[0]", "kwargs['opt']"], (1, "step"))
    "kwargs['opt']/step"
    """
    root, *rest = path
    return "/".join([names[root], *map(str, rest)])


def arg_positions(spec: CallSpec) -> list:
    """For each flat position of an ``(args, kwargs)`` spec: its argument index or name."""
    treedef = spec.treedef
    skeleton = treedef.unflatten(list(range(treedef.num_leaves)))
    out = []
    for path, _ in jax.tree_util.tree_flatten_with_path(skeleton)[0]:
        in_args, key = path[:2]  # (args or kwargs, which argument)
        out.append(key.idx if in_args.idx == 0 else key.key)
    return out


# -- inside the transform --------------------------------------------------------
def enter(frame: extend.Frame, graphdef: core.GraphDef, values: Sequence) -> tuple:
    """Rebuild the input objects from leaves; the frame owns their Variables."""
    objs = extend.unflatten(graphdef, list(values))
    frame.own(extend.flatten(objs).refs)
    return objs


def collect(name: str, before: core.GraphDef, objs: tuple, spec: CallSpec | None = None) -> tuple:
    """The leaf values of ``objs`` after the user's function, and their new GraphDef.

    Returns ``(None, values)`` when the structure is unchanged (the fast case),
    ``(graphdef, values)`` when the function only added Variables (``sow``),
    and raises ``StructureChangedError`` for any other structural change.
    """
    fg = extend.flatten(objs)
    if fg.graphdef == before:
        return None, fg.values()
    found = core.graph_changes(before, fg.graphdef)
    if found and all(c.adds_variables for c in found):
        return fg.graphdef, fg.values()
    raise _errors.StructureChangedError(
        _errors.STRUCTURE_CHANGED.format(
            transform=name,
            changes=_errors.bullets(
                _name_changes(found, object_names(spec, len(objs)) if spec else [])
            ),
        )
    )


def describe_changes(before: core.GraphDef, after: core.GraphDef, names: Sequence[str]) -> list:
    """Each structural change from ``before`` to ``after``, with argument names."""
    return _name_changes(core.graph_changes(before, after), names)


def _name_changes(found: list, names: Sequence[str]) -> list[str]:
    out = []
    for c in found:
        root = c.path[0] if c.path else None
        if isinstance(root, int) and root < len(names) and names[root]:
            out.append(f"'{path_name(names, c.path)}': {c.kind} {c.detail}")
        else:
            out.append(str(c))
    return out


class NewObject:
    """A pytree standing for an object created inside a transform: its leaves + GraphDef."""

    __slots__ = ("graphdef", "values")

    def __init__(self, graphdef: core.GraphDef, values: list):
        self.graphdef = graphdef
        self.values = values


jax.tree_util.register_pytree_node(
    NewObject, lambda n: ((n.values,), n.graphdef), lambda g, c: NewObject(g, *c)
)

HAS_OBJECTS = Static("objects")


def export(out: Any, objs: tuple) -> tuple[Static | None, Any]:
    """Replace the objects in the user's output by pytrees JAX can carry.

    An object that is one of the (rebuilt) inputs becomes ``Static(index)``, one
    reachable from an input (``model.encoder``, a Variable of it) ``Static(path)``:
    both come back as the caller's own objects. A new object (e.g. a Module created
    inside) becomes a ``NewObject`` holding its leaves, in the same position,
    so per-output axes (vmap ``out_axes``) still line up. Without objects the
    output passes through unchanged and the marker is None.
    """
    flat, treedef = jax.tree_util.tree_flatten(out, is_leaf=is_graph)
    if not any(isinstance(x, GRAPH_TYPES) for x in flat):
        return None, out
    index: dict[int, Any] = {id(o): i for i, o in enumerate(objs)}
    reachable = None
    parts = []
    for x in flat:
        if isinstance(x, GRAPH_TYPES):
            i = index.get(id(x))
            if i is None:
                if reachable is None:
                    reachable = _reachable(objs)
                i = reachable.get(id(x))
            if i is not None:
                parts.append(Static(i))
            else:
                fg = extend.flatten((x,))  # a tuple root: bare Variables are fine too
                parts.append(NewObject(fg.graphdef, fg.values()))
        else:
            parts.append(x)
    return HAS_OBJECTS, treedef.unflatten(parts)


def _reachable(objs: tuple) -> dict[int, tuple]:
    """Path (object index first) of every Module and Variable inside the inputs."""
    out: dict[int, tuple] = {}
    fg = extend.flatten(objs)
    for path, ref in zip(fg.paths, fg.refs, strict=True):
        if isinstance(ref, core.Variable):
            out.setdefault(id(ref), path)
    for i, obj in enumerate(objs):
        if isinstance(obj, core.Module):
            for path, module in obj.iter_modules():
                out.setdefault(id(module), (i, *path))
    return out


def _resolve(objs: tuple, path: tuple) -> Any:
    node = objs[path[0]]
    for key in path[1:]:
        node = getattr(node, key) if isinstance(node, core.Module) else node[key]
    return node


# -- outside, after the transform --------------------------------------------------
def propagate(fg: extend.FlatGraph, objs: tuple, new_graphdef: Any, values: Sequence) -> None:
    """Write the transform's results back into the caller's objects."""
    if new_graphdef is None:
        fg.set_values(values)
    else:
        grown = extend.unflatten(new_graphdef, list(values))
        core.update(objs, core.state(grown))


def import_(meta: Static | None, payload: Any, objs: tuple) -> Any:
    """Rebuild the user's output from ``export``'s (caller's objects for inputs)."""
    if meta is None:
        return payload

    def back(x):
        if type(x) is Static:
            return objs[x.value] if type(x.value) is int else _resolve(objs, x.value)
        if type(x) is NewObject:
            (new,) = extend.unflatten(x.graphdef, list(x.values))  # a one-object tuple
            return new
        return x

    return jax.tree_util.tree_map(back, payload, is_leaf=_is_marker)


def _is_marker(x: Any) -> bool:
    return type(x) is Static or type(x) is NewObject


def call_traced(
    name: str,
    fun: Callable,
    graphdef: core.GraphDef,
    spec: CallSpec,
    values: Sequence,
    leaves: Sequence,
    on_read: Callable | None = None,
) -> Traced:
    """The body every transform traces: rebuild, call ``fun``, collect, export.

    Returns a ``Traced`` (new GraphDef, new values, output marker and payload); arguments
    are a pytree ``(args, kwargs)`` described by ``spec``. ``on_read`` is the
    frame's callback for reads of captured Variables (see ``extend.transform_frame``).
    """
    with extend.transform_frame(name, on_read) as frame:
        objs = enter(frame, graphdef, values)
        args, kwargs = rebuild(spec, objs, leaves)
        out = fun(*args, **kwargs)
        new_graphdef, new_values = collect(name, graphdef, objs, spec)
        meta, payload = export(out, objs)
    return Traced(new_graphdef, new_values, meta, payload)


def apply(name: str, fun: Callable, args: tuple, kwargs: dict, wrap: Callable) -> Any:
    """Run ``fun(*args, **kwargs)`` under the JAX transform ``wrap`` and propagate.

    ``wrap(pure)`` must return a function of ``(values, leaves)`` (e.g.
    ``lambda pure: jax.checkpoint(pure)``); everything else, rebuilding the
    objects inside and writing mutations back outside, is done here.
    """
    ex = Extracted((args, kwargs))
    fg = ex.fg

    def pure(values, leaves):
        return call_traced(name, fun, fg.graphdef, ex.spec, values, leaves)

    traced = wrap(pure)(fg.values(), ex.leaves)
    propagate(fg, ex.objs, traced.graphdef, traced.values)
    return import_(traced.meta, traced.payload, ex.objs)


def as_exported(tree: Any, objs: tuple) -> Any:
    """``tree`` with each object replaced by the marker ``export`` gives it."""
    index = {id(o): i for i, o in enumerate(objs)}
    return jax.tree_util.tree_map(
        lambda x: Static(index[id(x)]) if isinstance(x, GRAPH_TYPES) else x,
        tree,
        is_leaf=is_graph,
    )
