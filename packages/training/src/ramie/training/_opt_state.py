"""Holding an optax state as Variables, and getting it back for optax.

optax states are trees of NamedTuples, tuples, lists and dicts of arrays.
``wrap`` keeps that structure and boxes every array in an ``OptState``
Variable, so the state splits, jits and checkpoints like any other state. Its
paths follow the optax state, NamedTuple fields by position: Adam's first
moment of ``linear/kernel`` is at ``opt_state/0/1/linear/kernel``.
``unwrap`` rebuilds the exact tree optax expects; ``assign`` writes a new
state's arrays into the existing Variables without changing the structure.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ramie import core

from . import _errors


class OptState(core.Variable):
    """The kind of an optimizer's own state: optax's arrays and the step counter.

    A kind of its own keeps it apart from the model's ``Param``s, so ``grad``
    never differentiates it and ``split(optimizer, OptState, ...)`` selects it.

    >>> import jax.numpy as jnp
    >>> from ramie.training import OptState
    >>> OptState(jnp.zeros(3)).value.shape
    (3,)
    """


_ARRAYS = (jax.Array, np.ndarray, np.generic, int, float, complex)


def wrap(tree: Any, path: tuple = ()) -> Any:
    """``tree`` with every array boxed in an ``OptState`` (containers kept as they are)."""
    if tree is None:
        return None
    if isinstance(tree, tuple):
        items = [wrap(v, path + (i,)) for i, v in enumerate(tree)]
        return type(tree)(*items) if hasattr(tree, "_fields") else tuple(items)
    if isinstance(tree, list):
        return [wrap(v, path + (i,)) for i, v in enumerate(tree)]
    if isinstance(tree, dict):
        return {k: wrap(v, path + (k,)) for k, v in tree.items()}
    if isinstance(tree, _ARRAYS):
        return OptState(jnp.asarray(tree))
    raise _errors.TrainingError(
        _errors.UNSUPPORTED_STATE_NODE.format(
            type_name=type(tree).__name__, path=core.format_path(("opt_state",) + path)
        )
    )


def unwrap(node: Any) -> Any:
    """The plain optax tree of a wrapped state: Variables replaced by their values."""
    if isinstance(node, core.Variable):
        return node.value
    if isinstance(node, tuple):
        items = [unwrap(v) for v in node]
        return type(node)(*items) if hasattr(node, "_fields") else tuple(items)
    if isinstance(node, list):
        return [unwrap(v) for v in node]
    if isinstance(node, dict):
        return {k: unwrap(v) for k, v in node.items()}
    return node


def assign(node: Any, new: Any) -> None:
    """Write the arrays of the optax tree ``new`` into the Variables of ``node``."""
    if isinstance(node, core.Variable):
        node.value = new
    elif isinstance(node, (tuple, list)):
        for v, n in zip(node, new, strict=True):
            assign(v, n)
    elif isinstance(node, dict):
        for k, v in node.items():
            assign(v, new[k])
