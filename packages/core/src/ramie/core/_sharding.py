"""Sharding metadata: logical axis names on Variables, mapped to a mesh.

A Variable says how its value is partitioned with the metadata key
``sharding_names`` (Flax NNX 0.12's key; ``sharding`` and ``sharding_metadata``
are read as aliases): one logical name (or ``None``) per dimension, e.g.
``("embed", "mlp")``. Logical names become mesh axes through
``logical_axis_rules`` (a context manager, or the ``rules=`` argument);
without rules a name is used as the mesh axis itself. From there
``get_partition_spec`` / ``get_named_sharding`` turn a State into
PartitionSpecs / NamedShardings leaf by leaf, and ``sharded_init`` builds a
model straight into its shardings.

Everything here is JAX's own engine (``jax.sharding``); nothing is home-made.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from . import _errors
from ._api import merge, split, state
from ._module import Module
from ._state import State
from ._variables import Variable, VariableMetadata

BAD_AXIS_RULE = (
    "logical_axis_rules: the rule {rule!r} is not a (logical name, mesh axis) pair. Give "
    "pairs like ('embed', 'model'), ('batch', ('data', 'fsdp')) or ('heads', None)."
)
SHARDING_RANK = (
    "The Variable at '{path}' has {count} logical axis name(s) {names} but its value has "
    "shape {shape} ({ndim} dimension(s)). Give one name (or None) per dimension in its "
    "'sharding_names' metadata (or with_partitioning / the layer's *_metadata keyword)."
)
SHARDING_UNKNOWN_AXIS = (
    "The Variable at '{path}' maps to {spec}, whose mesh axis {axis!r} is not in the "
    "mesh (axes {mesh_axes}). Add a logical_axis_rules entry mapping its logical name "
    "to one of the mesh's axes (or to None), or build the mesh with that axis."
)

#: The metadata key holding a Variable's logical axis names (Flax NNX 0.12's).
SHARDING_KEY = "sharding_names"
#: Other spellings read as the same thing (older and newer Flax NNX releases).
SHARDING_ALIASES = ("sharding", "sharding_metadata")
#: Every key read, in order: ``SHARDING_KEY`` first, then the aliases.
SHARDING_KEYS = (SHARDING_KEY, *SHARDING_ALIASES)
#: The metadata key of per-Variable rules, which win over the context's.
RULES_KEY = "sharding_rules"

Rules = Sequence[tuple[str, Any]]

_LOCAL = threading.local()


def sharding_names(variable: Variable) -> tuple | None:
    """The logical axis names a Variable carries (under any accepted key), or None.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Param, sharding_names
    >>> sharding_names(Param(jnp.ones((2, 3)), sharding=("embed", "mlp")))
    ('embed', 'mlp')
    """
    md = variable._metadata
    for key in SHARDING_KEYS:
        names = md.get(key)
        if names is not None:
            if isinstance(names, (NamedSharding, PartitionSpec)):
                return tuple(names.spec if isinstance(names, NamedSharding) else names)
            return tuple(names)
    return None


# -- rules ---------------------------------------------------------------------
def _stack(name: str) -> list:
    """This thread's stack of ``name`` settings (rules, eager sharding)."""
    stack = getattr(_LOCAL, name, None)
    if stack is None:
        stack = []
        setattr(_LOCAL, name, stack)
    return stack


@contextlib.contextmanager
def _pushed(stack: list, item: Any) -> Iterator[Any]:
    stack.append(item)
    try:
        yield item
    finally:
        stack.pop()


@contextlib.contextmanager
def logical_axis_rules(rules: Rules) -> Iterator[tuple]:
    """Map logical axis names to mesh axes inside a ``with`` block (this thread).

    ``rules`` is a sequence of ``(logical name, mesh axis)`` pairs, highest
    precedence first; a mesh axis may be a name, a tuple of names or ``None``
    (replicated). A logical name with no rule is replicated.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Param, State, get_partition_spec, logical_axis_rules
    >>> s = State({"w": Param(jnp.ones((4, 8)), sharding_names=("embed", "mlp"))})
    >>> with logical_axis_rules([("embed", None), ("mlp", "model")]):
    ...     get_partition_spec(s)["w"]
    P(None, 'model')
    """
    with _pushed(_stack("rules"), _check_rules(rules)) as pushed:
        yield pushed


def get_logical_axis_rules() -> tuple | None:
    """The innermost ``logical_axis_rules`` in force in this thread, or None."""
    stack = _stack("rules")
    return stack[-1] if stack else None


def _check_rules(rules: Rules) -> tuple:
    out = []
    for rule in rules:
        if not (isinstance(rule, (tuple, list)) and len(rule) == 2 and isinstance(rule[0], str)):
            raise ValueError(BAD_AXIS_RULE.format(rule=rule))
        target = rule[1]
        if isinstance(target, list):
            target = tuple(target)
        out.append((rule[0], target))
    return tuple(out)


def logical_to_mesh_axes(names: Sequence[str | None], rules: Rules | None = None) -> PartitionSpec:
    """The PartitionSpec for one array's logical axis names.

    Each dimension takes the first rule for its name whose mesh axes no earlier
    dimension uses; a name without such a rule is replicated (``None``). With
    no rules at all (neither given nor in a ``logical_axis_rules`` block) every
    name is taken as a mesh axis.

    >>> from ramie.core import logical_to_mesh_axes
    >>> logical_to_mesh_axes(("batch", "embed"), [("batch", ("data", "fsdp")), ("embed", None)])
    P(('data', 'fsdp'), None)
    """
    if rules is None:
        rules = get_logical_axis_rules()
    else:
        rules = _check_rules(rules)
    if rules is None:
        return PartitionSpec(*names)
    used: set[str] = set()
    out: list[Any] = []
    for name in names:
        chosen = None
        if name is not None:
            for logical, target in rules:
                if logical != name:
                    continue
                axes = (target,) if isinstance(target, str) else tuple(target or ())
                if target is None or not used.intersection(axes):
                    chosen = target
                    used.update(axes)
                    break
        out.append(chosen)
    return PartitionSpec(*out)


# -- State -> PartitionSpecs / NamedShardings --------------------------------------
def _key_name(k) -> Any:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return getattr(k, attr)
    return str(k)


def _is_variable(x) -> bool:
    return isinstance(x, Variable)


def _spec_of(path, leaf, rules) -> PartitionSpec:
    if not isinstance(leaf, Variable):
        return PartitionSpec()
    names = sharding_names(leaf)
    if names is None:
        return PartitionSpec()
    value = leaf._value
    ndim = len(getattr(value, "shape", ()))
    if len(names) != ndim:
        where = _errors.format_path(tuple(_key_name(k) for k in path))
        raise ValueError(
            SHARDING_RANK.format(
                path=where, names=names, count=len(names), shape=tuple(value.shape), ndim=ndim
            )
        )
    own = leaf._metadata.get(RULES_KEY)
    return logical_to_mesh_axes(names, own if own is not None else rules)


def _as_tree(tree: Any) -> Any:
    if isinstance(tree, Module):  # a Module is read as its State
        return state(tree)
    return tree


def get_partition_spec(tree: Any, rules: Rules | None = None) -> Any:
    """The PartitionSpec of every Variable in ``tree`` (a State, a Module, any pytree).

    The result has the tree's structure with one PartitionSpec in place of each
    Variable: ``P()`` (replicated) for Variables without logical names and for
    raw leaves. ``rules`` overrides the ``logical_axis_rules`` in force.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Param, State, get_partition_spec
    >>> s = State({"w": Param(jnp.ones((4, 8)), sharding_names=("data", None)),
    ...            "b": Param(jnp.ones(8))})
    >>> specs = get_partition_spec(s)
    >>> specs["w"], specs["b"]
    (P('data', None), P())
    """
    rules = None if rules is None else _check_rules(rules)
    return jax.tree_util.tree_map_with_path(
        lambda p, x: _spec_of(p, x, rules), _as_tree(tree), is_leaf=_is_variable
    )


def get_named_sharding(tree: Any, mesh: Mesh, rules: Rules | None = None) -> Any:
    """The NamedSharding on ``mesh`` of every Variable in ``tree``.

    Like ``get_partition_spec``, and checks that every mesh axis a spec names
    exists in ``mesh``.

    >>> import jax, jax.numpy as jnp
    >>> from ramie.core import Param, State, get_named_sharding
    >>> mesh = jax.make_mesh((1,), ("data",))
    >>> s = State({"w": Param(jnp.ones((4, 8)), sharding_names=("data", None))})
    >>> get_named_sharding(s, mesh)["w"].spec
    P('data', None)
    """
    rules = None if rules is None else _check_rules(rules)

    def one(path, leaf):
        spec = _spec_of(path, leaf, rules)
        _check_axes(path, spec, mesh)
        return NamedSharding(mesh, spec)

    return jax.tree_util.tree_map_with_path(one, _as_tree(tree), is_leaf=_is_variable)


def _check_axes(path, spec: PartitionSpec, mesh: Mesh) -> None:
    names = set(mesh.axis_names)
    for entry in spec:
        for axis in (entry,) if isinstance(entry, str) else tuple(entry or ()):
            if axis not in names:
                where = _errors.format_path(tuple(_key_name(k) for k in path))
                raise ValueError(
                    SHARDING_UNKNOWN_AXIS.format(
                        path=where, axis=axis, spec=spec, mesh_axes=tuple(mesh.axis_names)
                    )
                )


# -- constraints inside a model ----------------------------------------------------
def _current_mesh(mesh: Mesh | None):
    if mesh is not None:
        return mesh
    abstract = jax.sharding.get_abstract_mesh()
    return None if abstract.empty else abstract


def _constrain(x: Any, spec: PartitionSpec, mesh) -> Any:
    """Place ``x`` per ``spec``: reshard on Explicit mesh axes, a constraint on Auto ones."""
    kinds = dict(zip(mesh.axis_names, mesh.axis_types, strict=True))
    used = [a for e in spec for a in ((e,) if isinstance(e, str) else tuple(e or ()))]
    target = NamedSharding(mesh, spec) if isinstance(mesh, Mesh) else spec
    if any(kinds.get(a) == AxisType.Explicit for a in used):
        return jax.sharding.reshard(x, target)
    return jax.lax.with_sharding_constraint(x, target)


def with_sharding_constraint(
    x: Any,
    names: Sequence[str | None] | PartitionSpec,
    rules: Rules | None = None,
    mesh: Mesh | None = None,
) -> Any:
    """Constrain ``x`` to the sharding its logical axis names map to.

    Outside a mesh (no ``mesh=`` and no ``jax.set_mesh``) this returns ``x``
    unchanged, so a model that calls it runs on one device as is. On a mesh
    whose axes are ``Explicit`` it reshards (``jax.sharding.reshard``); on
    ``Auto`` axes it is ``jax.lax.with_sharding_constraint``.

    >>> import jax, jax.numpy as jnp
    >>> from ramie.core import with_sharding_constraint
    >>> with_sharding_constraint(jnp.ones((2, 3)), ("batch", None)).shape  # no mesh: a no-op
    (2, 3)
    """
    current = _current_mesh(mesh)
    if current is None:
        return x
    spec = names if isinstance(names, PartitionSpec) else logical_to_mesh_axes(names, rules)
    return _constrain(x, spec, current)


# -- with_partitioning and eager sharding --------------------------------------------
@contextlib.contextmanager
def use_eager_sharding(enabled: bool = True) -> Iterator[None]:
    """Inside the block, ``with_partitioning`` initializers place their values on
    the mesh in force (``jax.set_mesh``) as they create them.

    >>> import jax
    >>> from ramie.core import use_eager_sharding, eager_sharding_enabled
    >>> with use_eager_sharding():
    ...     eager_sharding_enabled()
    True
    """
    with _pushed(_stack("eager"), bool(enabled)):
        yield


def eager_sharding_enabled() -> bool:
    """Whether ``use_eager_sharding`` is on in this thread."""
    stack = _stack("eager")
    return bool(stack and stack[-1])


def with_partitioning(
    initializer: Callable[..., Any],
    sharding: Sequence[str | None],
    mesh: Mesh | None = None,
    **metadata: Any,
) -> Callable[..., VariableMetadata]:
    """Wrap an initializer so the Variable it fills carries logical axis names.

    The wrapped initializer returns a ``VariableMetadata`` that ``Param(...)``
    (and every layer) unpacks into the value plus ``sharding_names=sharding``
    and ``metadata``. It is the same mechanism as the layers' ``*_metadata``
    keywords: ``kernel_init=with_partitioning(init, names)`` and
    ``kernel_metadata={"sharding_names": names}`` give the same Param. Under
    ``use_eager_sharding`` (or with ``mesh=``) the value is also placed on the
    mesh as it is created.

    >>> import jax, jax.numpy as jnp
    >>> from ramie.core import Param, with_partitioning
    >>> init = with_partitioning(jax.nn.initializers.ones, (None, "model"))
    >>> p = Param(init(jax.random.key(0), (2, 4)))
    >>> p.sharding_names, p.value.shape
    ((None, 'model'), (2, 4))
    """
    names = tuple(sharding)

    def init(*args: Any, **kwargs: Any) -> VariableMetadata:
        value = initializer(*args, **kwargs)
        if isinstance(value, VariableMetadata):
            value, inner = value.value, value.metadata
        else:
            inner = {}
        target = mesh if mesh is not None else _current_mesh(None)
        place = mesh is not None or eager_sharding_enabled()
        # A layer may call it with a flat shape and reshape the result: not placed then.
        if place and target is not None and len(names) == getattr(value, "ndim", -1):
            value = _constrain(value, logical_to_mesh_axes(names), target)
        return VariableMetadata(value, {**inner, **metadata, SHARDING_KEY: names})

    init.__name__ = getattr(initializer, "__name__", "init")
    init.__doc__ = initializer.__doc__
    return init


# -- building a model into its shardings ----------------------------------------------
def _abstract(init_fn: Callable[[], Any]) -> tuple:
    box: list = []

    def build():
        graphdef, state = split(init_fn())
        box.append(graphdef)
        return state

    return build, box


def get_abstract_model(
    init_fn: Callable[[], Any], mesh: Mesh, rules: Rules | None = None
) -> tuple[Any, State]:
    """The GraphDef and abstract State (``jax.ShapeDtypeStruct``s carrying their
    NamedShardings) of the object ``init_fn`` builds, computing nothing.

    It is the target for restoring a checkpoint straight onto a mesh.

    >>> import jax, jax.numpy as jnp
    >>> from ramie import core
    >>> class M(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.ones((4, 2)), sharding_names=("data", None))
    >>> graphdef, abstract = core.get_abstract_model(M, jax.make_mesh((1,), ("data",)))
    >>> abstract["w"].value.shape, abstract["w"].value.sharding.spec
    ((4, 2), P('data', None))
    """
    build, box = _abstract(init_fn)
    shapes = jax.eval_shape(build)
    shardings = get_named_sharding(shapes, mesh, rules)
    abstract = jax.tree.map(_with_sharding, shapes, shardings, is_leaf=_is_variable)
    return box[0], abstract


def _with_sharding(leaf: Any, sharding: NamedSharding) -> Any:
    value = leaf._value if isinstance(leaf, Variable) else leaf
    out = jax.ShapeDtypeStruct(value.shape, value.dtype, sharding=sharding)
    return leaf.replace(out) if isinstance(leaf, Variable) else out


def sharded_init(init_fn: Callable[[], Any], mesh: Mesh, rules: Rules | None = None) -> Any:
    """Build the object ``init_fn`` returns directly into its shardings on ``mesh``.

    The shapes come from ``jax.eval_shape``; the values from one
    ``jax.jit(..., out_shardings=...)`` call driven by each Variable's logical
    axis names, so no device ever holds more than its shards. Variables
    without names (and RNG state) are replicated.

    >>> import jax, jax.numpy as jnp
    >>> from ramie import core
    >>> class M(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.ones((4, 2)), sharding_names=("data", None))
    >>> m = core.sharded_init(M, jax.make_mesh((1,), ("data",)))
    >>> m.w.value.sharding.spec
    P('data', None)
    """
    build, box = _abstract(init_fn)
    shapes = jax.eval_shape(build)
    shardings = get_named_sharding(shapes, mesh, rules)
    with contextlib.ExitStack() as stack:
        if rules is not None:
            stack.enter_context(logical_axis_rules(rules))
        state = jax.jit(build, out_shardings=shardings)()
    return merge(box[0], state)
