"""``PARTITION_NAME``: naming a vmap/scan/pmap axis in Variables' sharding metadata.

A Variable's logical axis names (``sharding_names`` metadata, as Flax NNX 0.12
writes it; ``sharding`` is read as an alias, see ``ramie.core.sharding_names``)
are a tuple with one name per array axis (``None`` for an unsharded one). A stack of layers
built by ``vmap`` has one more axis than each layer; with
``transform_metadata={PARTITION_NAME: "layers"}`` that axis is named
``"layers"`` in the stacked Variables' ``sharding`` (inserted at the output
axis). Going the other way, inside a ``vmap``/``scan``/``pmap`` over such a
stack, each layer's Variables see their ``sharding`` without that entry, so it
matches the rank of the per-layer value. Variables without a ``sharding``
tuple are left alone. The caller's objects are never changed by the inner view.

>>> import jax, jax.numpy as jnp
>>> from ramie import core
>>> from ramie.transforms import PARTITION_NAME, vmap
>>> class Dense(core.Module):
...     def __init__(self, key):
...         w = jax.random.normal(key, (2, 3))
...         self.w = core.Param(w, sharding_names=("embed", "mlp"))
>>> keys = jax.random.split(jax.random.key(0), 4)
>>> stack = vmap(Dense, transform_metadata={PARTITION_NAME: "layers"})(keys)
>>> core.sharding_names(stack.w)
('layers', 'embed', 'mlp')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ramie import core
from ramie.core import extend

#: The ``transform_metadata`` key whose value names the mapped axis in ``sharding``.
PARTITION_NAME = "partition_name"
#: The Variable metadata keys that may hold logical axis names, in the order core
#: reads them (core's list: ``ramie.core.extend.SHARDING_KEYS``).
SHARDING_KEYS = extend.SHARDING_KEYS


def name_of(metadata: Mapping[str, Any] | None) -> Any:
    """The axis name ``transform_metadata`` gives, or None."""
    if not metadata:
        return None
    return metadata.get(PARTITION_NAME)


def _sharding(ref: Any) -> tuple | None:
    """The key holding ``ref``'s logical axis names and the names, or ``(None, None)``."""
    if not isinstance(ref, core.Variable):
        return None, None
    metadata = ref.metadata
    for key in SHARDING_KEYS:
        names = metadata.get(key)
        if names is not None:
            return (key, tuple(names)) if isinstance(names, (tuple, list)) else (None, None)
    return None, None


def _axis_index(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def insert(refs: Sequence, axes: Sequence, name: Any) -> None:
    """Insert ``name`` at each Variable's mapped output axis in its ``sharding``."""
    for ref, axis in zip(refs, axes, strict=True):
        key, names = _sharding(ref)
        if names is None or not isinstance(axis, int):
            continue
        at = _axis_index(axis, len(names) + 1)
        setattr(ref, key, (*names[:at], name, *names[at:]))


def stripped(fg: extend.FlatGraph, axes: Sequence, name: Any) -> core.GraphDef:
    """The GraphDef of ``fg``'s objects with ``name`` taken out of mapped leaves' ``sharding``.

    Only the GraphDef is new: the objects behind ``fg`` keep their metadata.
    """
    objs = extend.unflatten(fg.graphdef, fg.values())
    inner = extend.flatten(objs)
    changed = False
    for ref, axis in zip(inner.refs, axes, strict=True):
        key, names = _sharding(ref)
        if names is None or not isinstance(axis, int) or isinstance(axis, bool):
            continue
        at = _axis_index(axis, len(names))
        if 0 <= at < len(names) and names[at] == name:
            setattr(ref, key, (*names[:at], *names[at + 1 :]))
            changed = True
    return extend.flatten(objs).graphdef if changed else fg.graphdef
