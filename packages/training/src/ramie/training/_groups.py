"""Per-group optimizers: a filter picks each group's parameters, optax does the rest.

``Optimizer(model, {filter: transformation, ...})`` labels every parameter with
the first group whose filter matches it and hands the labels to
``optax.multi_transform``; nothing about the optimization is reimplemented.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import optax

from ramie import core

from . import _errors


def is_transformation(tx: Any) -> bool:
    """True for an optax GradientTransformation (or anything with ``init`` and ``update``)."""
    return callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))


def filter_name(f: Any) -> str:
    """How a filter is shown in messages: its predicate's repr (``Param``, ``Any(...)``)."""
    return repr(core.to_predicate(f))


def pairs_of(groups: Any) -> list[tuple[Any, Any]]:
    """The ``(filter, transformation)`` pairs of a groups mapping or sequence, checked."""
    if isinstance(groups, Mapping):
        pairs = list(groups.items())
    elif isinstance(groups, Sequence) and not isinstance(groups, str):
        pairs = list(groups)
        for item in pairs:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise _errors.TrainingError(
                    _errors.BAD_GROUPS.format(problem=f"found the item {item!r}")
                )
    else:
        raise _errors.TrainingError(
            _errors.NOT_A_TRANSFORMATION.format(type_name=type(groups).__name__)
        )
    if not pairs:
        raise _errors.TrainingError(_errors.BAD_GROUPS.format(problem="no group was given"))
    for f, tx in pairs:
        if not is_transformation(tx):
            raise _errors.TrainingError(
                _errors.BAD_GROUPS.format(
                    problem=f"the group {filter_name(f)} was given a {type(tx).__name__}, "
                    "not an optax GradientTransformation"
                )
            )
    return pairs


def group_label(index: int) -> str:
    """The label of the ``index``-th group in the optax state: ``group0``, ``group1``..."""
    return f"group{index}"


def group_transform(params: core.State, groups: Any) -> optax.GradientTransformation:
    """One ``optax.multi_transform`` giving each group's parameters its own transformation.

    ``params`` are the Variables the optimizer updates; each goes to the first
    group whose filter matches it, and a parameter no group matches is an error.
    """
    pairs = pairs_of(groups)
    predicates = [core.to_predicate(f) for f, _ in pairs]
    labels: dict[tuple, str] = {}
    unmatched = []
    for path, leaf in params.flat_state().items():
        for i, predicate in enumerate(predicates):
            if predicate(path, leaf):
                labels[path] = group_label(i)
                break
        else:
            kind = type(leaf).__name__ if isinstance(leaf, core.Variable) else "array"
            unmatched.append(f"{core.format_path(path)} ({kind})")
    if unmatched:
        raise _errors.TrainingError(
            _errors.UNMATCHED_PARAMETERS.format(
                count=len(unmatched),
                groups=", ".join(filter_name(f) for f, _ in pairs),
                paths=core.format_paths(unmatched),
            )
        )
    label_tree = jax.tree_util.tree_map_with_path(
        lambda keys, _: labels[tuple(k.key for k in keys)], core.to_pure_dict(params)
    )
    transforms = {group_label(i): tx for i, (_, tx) in enumerate(pairs)}
    return optax.multi_transform(transforms, label_tree)
