"""Variables: boxes that hold one piece of state plus metadata.

The kind of a Variable is its class: ``Param``, ``BatchStat``, ``Cache``,
``Intermediate``, or any user subclass (``class Count(Variable): pass``).
Filters select state by kind, so the class is the label.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from . import _containers, _errors, _frames, _plainjax, _reprs, _valuecache
from ._caches import BoundedCache

_MISSING = object()
_ACTIVE = _frames.ACTIVE  # frames open in any thread (see _frames)
_OWN = frozenset({"_value", "_metadata", "value"})
_EMPTY: dict = {}


def _leaf_ok(x) -> bool:
    if x is None or isinstance(x, (jax.Array, np.ndarray, np.generic, bool, int, float, complex)):
        return True
    if isinstance(x, (list, tuple)):
        return all(_leaf_ok(v) for v in x)
    if isinstance(x, dict):
        return all(_leaf_ok(v) for v in x.values())
    if isinstance(x, Variable):
        return False
    # Abstract values (jax.ShapeDtypeStruct) and other array-likes.
    return hasattr(x, "shape") and hasattr(x, "dtype")


def check_leaf(value, where: str) -> None:
    """Raise StateLeafError unless ``value`` may live in a Variable or State."""
    if not _leaf_ok(value):
        text = repr(value)
        if len(text) > 60:
            text = text[:57] + "..."
        raise _errors.StateLeafError(
            _errors.STATE_LEAF_TYPE.format(where=where, found_type=type(value).__name__, found=text)
        )


class VariableMetadata:
    """A value plus metadata for the Variable that will box it.

    Initializers wrapped by ``with_partitioning`` return one; ``Variable(...)``
    unpacks it, so a layer's ``Param(kernel_init(...))`` picks the metadata up.
    Keywords given to the Variable itself win over these.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Param, VariableMetadata
    >>> Param(VariableMetadata(jnp.ones(2), {"sharding_names": ("embed",)})).sharding_names
    ('embed',)
    """

    __slots__ = ("value", "metadata")

    def __init__(self, value: Any, metadata: dict[str, Any]):
        self.value = value
        self.metadata = dict(metadata)

    def __repr__(self) -> str:
        return f"VariableMetadata({self.value!r}, {self.metadata!r})"


def _unwrap(x):
    return x.value if isinstance(x, Variable) else x


class Variable:
    """A mutable box around one value (usually a ``jax.Array``) plus metadata.

    Subclass it to make a new kind of state; the subclass is the kind that
    filters select on. Variables support arithmetic and in-place operators,
    indexing (``v[...]``), ``.value``, and ``__jax_array__``/``__array__``.

    Metadata is given as keyword arguments, read as attributes or through
    ``metadata``, and replaced with ``replace(...)`` or plain assignment.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Variable
    >>> class Count(Variable): pass
    >>> c = Count(jnp.array(0), description="steps taken")
    >>> c += 1
    >>> int(c.value), c.description
    (1, 'steps taken')

    Comparisons use the value, like the other operators: ``v == 0`` and
    ``v != 0`` give arrays (as in Flax NNX), so ``if cache_index == 0:``
    tests the number. Hashing stays by identity (unlike NNX, where Variables
    are unhashable): a Variable may key a dict or sit in a set, and two
    Variables are the same key only when they are the same object.

    ``v[...] = x`` writes into the current array and keeps its dtype and
    shape: ``x`` is cast when that loses no kind of information (int into a
    float Variable, float64 into float32); a narrowing cast (float into an
    int Variable, complex into float) raises ``StateLeafError`` naming the
    Variable. ``v.value = x`` replaces the value as given (any dtype/shape).

    >>> p = Count(jnp.zeros(2))
    >>> p[...] = 5
    >>> p[...].dtype.name, bool(p[0] == 5)
    ('float32', True)

    ``Param[jax.Array]`` (any kind subscripted by a type) is accepted in type
    hints and dataclass fields and means the kind itself.

    Note: with jax >= 0.10 most ``jnp`` functions no longer accept objects
    through ``__jax_array__``; pass ``v.value`` (or ``v[...]``) to them. The
    Python operators (``x @ v + b``) work directly.
    """

    __slots__ = ("_value", "_metadata", "__weakref__")

    def __init__(self, value: Any, **metadata: Any):
        if type(value) is VariableMetadata:  # from an initializer wrapped with metadata
            metadata = {**value.metadata, **metadata}
            value = value.value
        check_leaf(value, type(self).__name__)
        object.__setattr__(self, "_value", value)
        for name, item in metadata.items():
            _check_hashable(name, item)
        object.__setattr__(self, "_metadata", metadata or _EMPTY)
        if _ACTIVE[0]:
            _frames.owned_by_frame(self)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _register(cls)

    def __class_getitem__(cls, item: Any) -> type:
        # ``Param[jax.Array]`` in annotations: the kind itself (the value type is a hint).
        return cls

    # Comparisons use the value (see the class docstring); hashing stays by identity.
    __hash__ = object.__hash__

    # -- value -------------------------------------------------------------
    @property
    def value(self) -> Any:
        """The boxed value."""
        v = self._value
        if _ACTIVE[0]:
            _frames.read_outside(self)
        if isinstance(v, jax.core.Tracer) and _plainjax.tracer_is_dead(v):
            raise _errors.TraceLeakError(_errors.TRACE_LEAK.format(kind=type(self).__name__))
        return v

    @value.setter
    def value(self, new: Any) -> None:
        check_leaf(new, type(self).__name__)
        if _ACTIVE[0] and isinstance(new, jax.core.Tracer):
            frame = _frames.current_frame()
            if frame is not None and id(self) not in frame.owned:
                _captured_mutation(self, new, frame.name)
        object.__setattr__(self, "_value", new)
        _valuecache.written()

    # -- metadata ----------------------------------------------------------
    @property
    def metadata(self) -> dict[str, Any]:
        """A copy of this Variable's metadata."""
        return dict(self._metadata)

    # -- Flax NNX accessor spellings -----------------------------------------
    def get_value(self, *, index: Any = _MISSING) -> Any:
        """The value (``v.get_value()`` is ``v.value``); ``index=`` reads ``v.value[index]``."""
        v = self.value
        return v if index is _MISSING else v[index]

    def set_value(self, value: Any, *, index: Any = _MISSING) -> None:
        """Replace the value (``v.value = value``); ``index=`` writes like ``v[index] = value``."""
        if index is _MISSING:
            self.value = value
        else:
            self[index] = value

    def get_raw_value(self) -> Any:
        """The stored value, read without any check (ramie has no value hooks)."""
        return self._value

    def get_metadata(self, name: str | None = None, default: Any = _MISSING) -> Any:
        """All metadata as a new dict, or the entry ``name`` (``default`` when absent).

        >>> import jax.numpy as jnp
        >>> from ramie.core import Param
        >>> p = Param(jnp.zeros(2), tag="enc")
        >>> p.get_metadata(), p.get_metadata("tag"), p.get_metadata("other", None)
        ({'tag': 'enc'}, 'enc', None)
        """
        if name is None:
            return dict(self._metadata)
        if name in self._metadata:
            return self._metadata[name]
        if default is not _MISSING:
            return default
        raise KeyError(
            _errors.NO_METADATA.format(
                kind=type(self).__name__, name=name, keys=sorted(self._metadata)
            )
        )

    def set_metadata(self, *args: Any, **metadata: Any) -> None:
        """Set metadata: ``set_metadata(name, value)``, ``set_metadata(**kw)``, or replace all
        of it with ``set_metadata(mapping)``.

        >>> import jax.numpy as jnp
        >>> from ramie.core import Param
        >>> p = Param(jnp.zeros(2), tag="enc")
        >>> p.set_metadata(tag="dec", frozen=True); p.get_metadata()
        {'tag': 'dec', 'frozen': True}
        >>> p.set_metadata({"only": 1}); p.get_metadata()
        {'only': 1}
        """
        if len(args) == 2 and isinstance(args[0], str):
            metadata = {args[0]: args[1], **metadata}
            base = self._metadata
        elif len(args) == 1 and isinstance(args[0], Mapping) and not metadata:
            metadata, base = dict(args[0]), _EMPTY
        elif not args:
            base = self._metadata
        else:
            raise TypeError(_errors.SET_METADATA_ARGS.format(kind=type(self).__name__))
        for name, item in metadata.items():
            _check_hashable(name, item)
        object.__setattr__(self, "_metadata", {**base, **metadata})
        _containers.bump()

    def has_metadata(self, name: str) -> bool:
        """Whether this Variable has the metadata entry ``name``."""
        return name in self._metadata

    def del_metadata(self, name: str) -> None:
        """Remove the metadata entry ``name``."""
        if name not in self._metadata:
            raise KeyError(
                _errors.NO_METADATA.format(
                    kind=type(self).__name__, name=name, keys=sorted(self._metadata)
                )
            )
        object.__setattr__(
            self, "_metadata", {k: v for k, v in self._metadata.items() if k != name}
        )
        _containers.bump()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in _OWN:
            raise AttributeError(name)
        try:
            return self._metadata[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no attribute or metadata {name!r}; its metadata "
                f"keys are {sorted(self._metadata)}."
            ) from None

    def __setattr__(self, name: str, item: Any) -> None:
        if name in _OWN:
            object.__setattr__(self, name, item)
            if name == "_value":  # ``value`` goes through its setter, which says so itself
                _valuecache.written()
            return
        _check_hashable(name, item)
        object.__setattr__(self, "_metadata", {**self._metadata, name: item})
        _containers.bump()

    def replace(self, value: Any = _MISSING, **metadata: Any) -> Variable:
        """Return a new Variable of the same kind with ``value``/metadata replaced.

        >>> import jax.numpy as jnp
        >>> from ramie.core import Param
        >>> p = Param(jnp.zeros(2), sharding=None)
        >>> q = p.replace(jnp.ones(2))
        >>> type(q).__name__, float(q.value.sum())
        ('Param', 2.0)
        """
        new = object.__new__(type(self))
        v = self._value if value is _MISSING else value
        if value is not _MISSING:
            check_leaf(v, type(self).__name__)
        for name, item in metadata.items():
            _check_hashable(name, item)
        object.__setattr__(new, "_value", v)
        object.__setattr__(
            new, "_metadata", {**self._metadata, **metadata} if metadata else self._metadata
        )
        if _ACTIVE[0]:
            _frames.owned_by_frame(new)
        return new

    def copy(self) -> Variable:
        """A new Variable of the same kind with the same value and metadata."""
        return _snapshot(self)

    # -- array protocol ------------------------------------------------------
    def __jax_array__(self):
        return self.value

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.value, dtype=dtype)

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    @property
    def ndim(self):
        return self.value.ndim

    @property
    def size(self):
        return self.value.size

    @property
    def T(self):  # noqa: N802 - numpy's name
        """The transposed value (``v.value.T``)."""
        return self.value.T

    def __len__(self):
        return len(self.value)

    def __iter__(self):
        return iter(self.value)

    def __bool__(self):
        return bool(self.value)

    def __float__(self):
        return float(self.value)

    def __int__(self):
        return int(self.value)

    def __index__(self):
        return operator.index(self.value)

    def __getitem__(self, index):
        return self.value[index]

    def __setitem__(self, index, item) -> None:
        item = _unwrap(item)
        current = self.value
        dtype = getattr(current, "dtype", None)
        if dtype is not None:
            _check_cast(self, item, dtype)
        if isinstance(current, jax.Array):
            if index is Ellipsis:
                if (
                    isinstance(item, jax.Array)
                    and item.dtype == dtype
                    and item.shape == current.shape
                ):
                    self.value = item
                else:  # a scalar or another dtype: broadcast and cast, keeping the array
                    self.value = jax.numpy.broadcast_to(
                        jax.numpy.asarray(item, dtype=dtype), current.shape
                    )
            else:
                self.value = current.at[index].set(item)
        else:
            current = np.array(current, copy=True)
            current[index] = item
            self.value = current

    def __treescope_repr__(self, path, subtree_renderer):
        return _reprs.treescope(self, path, subtree_renderer)

    def __repr__(self) -> str:
        v = self._value
        shape, dtype = getattr(v, "shape", None), getattr(v, "dtype", None)
        if shape is not None and dtype is not None and int(np.prod(shape)) > 8:
            body = f"{dtype}{list(shape)}"
        else:
            body = f"value={v!r}"
        meta = "".join(f", {k}={item!r}" for k, item in self._metadata.items())
        return f"{type(self).__name__}({body}{meta})"


def _rank(dtype) -> int | None:
    """0 bool, 1 integer, 2 float, 3 complex; None for other dtypes (keys, ...)."""
    for i, kind in enumerate(_KINDS):
        if jax.numpy.issubdtype(dtype, kind):
            return i
    return None


_KINDS = (np.bool_, np.integer, np.floating, np.complexfloating)
_PY_RANK = {bool: 0, int: 1, float: 2, complex: 3}


def _check_cast(v: Variable, item: Any, dtype) -> None:
    """Refuse ``v[...] = item`` when ``item`` is of a higher kind than ``dtype``."""
    src = _PY_RANK.get(type(item))
    if src is None:
        item_dtype = getattr(item, "dtype", None)
        if item_dtype is None:
            return
        src = _rank(item_dtype)
        found = str(item_dtype)
    else:
        found = f"a Python {type(item).__name__}"
    dst = _rank(dtype)
    if src is not None and dst is not None and src > dst:
        raise _errors.StateLeafError(
            _errors.UNSAFE_ITEM_CAST.format(kind=type(v).__name__, dtype=dtype, found=found)
        )


def _captured_mutation(v: Variable, new: Any, transform: str) -> None:
    old = v._value
    shape, dtype = getattr(old, "shape", None), getattr(old, "dtype", None)
    found = f"holding {dtype}{list(shape)}" if shape is not None else f"holding {old!r:.40}"
    raise _errors.CapturedMutationError(
        _errors.CAPTURED_MUTATION.format(kind=type(v).__name__, found=found, transform=transform)
    )


def _check_hashable(name: str, item: Any) -> None:
    try:
        hash(item)
    except TypeError:
        raise _errors.StateLeafError(
            _errors.METADATA_UNHASHABLE.format(name=name, type_name=type(item).__name__)
        ) from None


def _snapshot(v: Variable) -> Variable:
    new = _new(type(v))
    _set_value(new, v._value)
    _set_metadata(new, v._metadata)
    if _ACTIVE[0]:
        _frames.owned_by_frame(new)
    return new


def metadata_key(v: Variable) -> tuple:
    """The metadata of ``v`` as a hashable, order-independent tuple."""
    md = v._metadata
    if not md:
        return ()
    return tuple(sorted(md.items()))


def make_variable(cls: type, value: Any, metadata_items: tuple) -> Variable:
    """Build a Variable of ``cls`` without running ``__init__`` (no validation)."""
    new = _new(cls)
    _set_value(new, value)
    _set_metadata(new, dict(metadata_items) if metadata_items else _EMPTY)
    if _ACTIVE[0]:
        _frames.owned_by_frame(new)
    return new


def _binary(op):
    def method(self, other):
        return op(self.value, _unwrap(other))

    def rmethod(self, other):
        return op(_unwrap(other), self.value)

    def imethod(self, other):
        self.value = op(self.value, _unwrap(other))
        return self

    return method, rmethod, imethod


for _name in [
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul",
    "and", "or", "xor", "lshift", "rshift",
]:  # fmt: skip
    _op = getattr(operator, _name + "_" if _name in ("and", "or") else _name)
    _m, _r, _i = _binary(_op)
    setattr(Variable, f"__{_name}__", _m)
    setattr(Variable, f"__r{_name}__", _r)
    setattr(Variable, f"__i{_name}__", _i)

for _name in ["lt", "le", "gt", "ge", "eq", "ne"]:
    setattr(Variable, f"__{_name}__", _binary(getattr(operator, _name))[0])

for _name in ["neg", "pos", "abs", "invert"]:
    setattr(
        Variable, f"__{_name}__", (lambda op: lambda self: op(self.value))(getattr(operator, _name))
    )


#: One shared metadata dict per distinct metadata (at most 4096).
_METADATA_DICTS = BoundedCache("metadata", 4096)


def _metadata_dict(items: tuple) -> dict:
    """The (shared, never mutated) metadata dict for sorted metadata items."""
    md = _METADATA_DICTS.get(items)
    if md is None:
        md = _METADATA_DICTS.put(items, dict(items))
    return md


def _register(cls: type) -> None:
    # These run for every Variable each time a State crosses jax.jit/tree_map:
    # kept to a few C-level calls each.
    def flatten_with_keys(v):
        md = v._metadata
        return ((_VALUE_KEY, v._value),), (tuple(sorted(md.items())) if md else ())

    def flatten(v):
        md = v._metadata
        return (v._value,), (tuple(sorted(md.items())) if md else ())

    def unflatten(md, children):
        new = _new(cls)
        _set_value(new, children[0])
        _set_metadata(new, _metadata_dict(md) if md else _EMPTY)
        if _ACTIVE[0]:
            _frames.owned_by_frame(new)
        return new

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)


_VALUE_KEY = jax.tree_util.GetAttrKey("value")
_register(Variable)
_new = object.__new__
_set_value = Variable.__dict__["_value"].__set__
_set_metadata = Variable.__dict__["_metadata"].__set__


class Param(Variable):
    """A trainable parameter. ``grad`` differentiates Params by default."""

    __slots__ = ()


class BatchStat(Variable):
    """Statistics gathered over batches (BatchNorm's running mean and variance)."""

    __slots__ = ()


class Cache(Variable):
    """Cached values, e.g. the keys and values of autoregressive attention."""

    __slots__ = ()


class Intermediate(Variable):
    """Values recorded during a forward pass with ``Module.sow``."""

    __slots__ = ()
