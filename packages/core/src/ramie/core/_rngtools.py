"""Forking the Rngs streams inside an object: ``fork_rngs``, ``restore_rngs``, ``with_rngs``.

``fork_rngs(model, split=n)`` changes the streams of ``model`` in place (each
gets a new key, split into ``n`` when asked) and returns the backups that
``restore_rngs`` puts back; ``with_rngs(model, split=..., fork=...,
broadcast=...)`` leaves ``model`` alone and returns a copy with new streams.
Either way every stream used advances its counter once, like a draw.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from . import _module
from ._api import clone
from ._rngs import RngStream, rule_for

_NO_RULE = object()


def _streams(node: Any) -> list[RngStream]:
    """The RngStreams reachable from ``node`` (Modules and containers), each once."""
    return [m for _, m in _module._iter_modules(node, (), set()) if isinstance(m, RngStream)]


def _shape_rule(rules: Any, name: str) -> Any:
    """The split/broadcast shape ``rules`` give stream ``name``; ``_NO_RULE`` for none."""
    if rules is None:
        return _NO_RULE
    if isinstance(rules, Mapping):
        return rule_for(rules, name, _NO_RULE)
    return rules


def _selected(selection: Any, name: str) -> bool:
    if selection is None or selection is False:
        return False
    if isinstance(selection, list):
        return any(_selected(s, name) for s in selection)
    return rule_for({selection: True}, name, False)


def _set(stream: RngStream, key: jax.Array) -> None:
    stream.key.value = key
    stream.count.value = jnp.zeros(key.shape, dtype=jnp.uint32)


class SplitBackups:
    """What ``fork_rngs`` replaced: iterate it, pass it to ``restore_rngs``, or use it
    as a context manager (restoring on exit)."""

    def __init__(self, backups: list[tuple[RngStream, jax.Array, jax.Array]]):
        self._backups = backups

    def __iter__(self) -> Iterator[tuple[RngStream, jax.Array, jax.Array]]:
        return iter(self._backups)

    def __len__(self) -> int:
        return len(self._backups)

    def __enter__(self) -> SplitBackups:
        return self

    def __exit__(self, *exc: Any) -> None:
        restore_rngs(self)


def restore_rngs(backups: SplitBackups) -> None:
    """Put back the streams ``fork_rngs`` changed (their counters stay advanced)."""
    for stream, key, count in backups:
        stream.key.value = key
        stream.count.value = count


def fork_rngs(
    node: Any = _NO_RULE, /, *, split: Any = None
) -> SplitBackups | Callable[[Callable], Callable]:
    """Give every stream in ``node`` a new key, in place; return the backups.

    ``split`` (an int, a shape, or a mapping from stream name or ``...`` to
    a shape or ``None``) splits the new keys, e.g. for ``vmap``. The forking
    draws one key from each stream (its counter advances and stays advanced
    after ``restore_rngs``). Without ``node`` it is a decorator that forks the
    streams of the function's arguments for the call and restores them after.

    >>> from ramie.core import Rngs, fork_rngs
    >>> rngs = Rngs(params=0)
    >>> with fork_rngs(rngs, split=4):
    ...     rngs.params.key.value.shape
    (4,)
    >>> rngs.params.key.value.shape, int(rngs.params.count.value)
    ((), 1)
    """
    if node is _NO_RULE:

        def decorator(f: Callable) -> Callable:
            @functools.wraps(f)
            def forked(*args: Any, **kwargs: Any) -> Any:
                with fork_rngs((args, kwargs), split=split):
                    return f(*args, **kwargs)

            return forked

        return decorator
    backups = []
    for stream in _streams(node):
        key = stream.key.value
        new = stream()
        backups.append((stream, key, stream.count.value))
        shape = _shape_rule(split, stream.tag)
        if shape is not _NO_RULE and shape is not None:
            new = jax.random.split(new, shape)
        _set(stream, new)
    return SplitBackups(backups)


def with_rngs(
    node: Any,
    /,
    *,
    split: Any = None,
    fork: Any = None,
    broadcast: Any = None,
    only: Any = True,
) -> Any:
    """A copy of ``node`` whose Rngs streams are split, forked or broadcast.

    Per stream (selected by ``only``), the first rule that applies wins:
    ``split`` (an int/shape for all streams, or a mapping from stream name or
    ``...`` to a shape) gives it that many independent keys; ``fork`` (a
    stream name, ``...``, or a list of those) gives it one new key;
    ``broadcast`` (like ``split``) repeats one new key to a shape. Other
    streams are copied unchanged. Each stream used advances in ``node``;
    nothing else in ``node`` changes.

    >>> from ramie.core import Rngs, with_rngs
    >>> rngs = Rngs(params=0, dropout=1)
    >>> new = with_rngs(rngs, split={"params": 4}, fork="dropout")
    >>> new.params.key.value.shape, new.dropout.key.value.shape
    ((4,), ())
    >>> int(rngs.params.count.value), int(new.params.count.value[0])
    (1, 0)
    """
    copy = clone(node)
    for old, new in zip(_streams(node), _streams(copy), strict=True):
        name = old.tag
        if not _selected(only, name):
            continue
        shape = _shape_rule(split, name)
        if shape is not _NO_RULE and shape is not None:
            _set(new, jax.random.split(old(), shape))
            continue
        if _selected(fork, name):
            _set(new, old())
            continue
        shape = _shape_rule(broadcast, name)
        if shape is not _NO_RULE and shape is not None:
            key = old()
            shape = (shape,) if isinstance(shape, int) else tuple(shape)
            _set(new, jnp.broadcast_to(key, shape + key.shape))
    return copy
