"""Rngs: named streams of PRNG keys whose key and counter are state.

Each stream is a key plus a counter. Calling a stream returns
``fold_in(key, counter)`` and increments the counter, so consecutive calls
give different keys and the advance is recorded in State (it propagates out of
transforms like any other Variable).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _errors
from ._module import Module
from ._variables import Variable


class RngState(Variable):
    """Base kind of the state of an Rngs stream."""

    __slots__ = ()


class RngKey(RngState):
    """The root PRNG key of an Rngs stream."""

    __slots__ = ()


class RngCount(RngState):
    """The number of keys an Rngs stream has handed out."""

    __slots__ = ()


def as_key(seed: Any, name: str = "default") -> jax.Array:
    """Turn an int seed, a typed key or raw uint32 key data into a typed PRNG key."""
    if isinstance(seed, Variable):
        seed = seed.value
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(_errors.BAD_RNG_SEED.format(name=name, found=repr(seed)))
    if isinstance(seed, (int, np.integer)):
        return jax.random.key(seed)
    dtype = getattr(seed, "dtype", None)
    if dtype is not None:
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            return seed
        if dtype == jnp.uint32 and seed.shape[-1:] == (2,):
            return jax.random.wrap_key_data(seed)
        if jnp.issubdtype(dtype, jnp.integer) and seed.shape == ():
            return jax.random.key(seed)
    raise TypeError(_errors.BAD_RNG_SEED.format(name=name, found=repr(seed)[:80]))


class RngStream(Module):
    """One named stream of keys: ``stream()`` gives a new key each call.

    >>> from ramie.core import RngStream
    >>> import jax
    >>> s = RngStream(jax.random.key(0), tag="params")
    >>> bool((jax.random.key_data(s()) != jax.random.key_data(s())).any())
    True
    """

    def __init__(self, key: Any, *, tag: str):
        self.key = RngKey(as_key(key, tag), tag=tag)
        self.count = RngCount(jnp.zeros(self.key.value.shape, dtype=jnp.uint32), tag=tag)
        self.tag = tag

    def __call__(self) -> jax.Array:
        count = self.count.value
        key = jax.random.fold_in(self.key.value, count) if not count.shape else _fold(self)
        self.count.value = count + 1
        return key

    def fork(self, split: int | tuple[int, ...] | None = None) -> RngStream:
        """A new, independent stream (advancing this one); ``split`` stacks n of them."""
        key = self()
        if split is not None:
            key = jax.random.split(key, split)
        return RngStream(key, tag=self.tag)


def _fold(stream: RngStream) -> jax.Array:
    keys, counts = stream.key.value, stream.count.value
    folded = jax.vmap(jax.random.fold_in)(keys.reshape(-1), counts.reshape(-1))
    return folded.reshape(keys.shape)


_RESERVED = frozenset(["fork", "streams", "items", "split_keys"]) | frozenset(dir(Module))


class Rngs(Module):
    """Named PRNG streams: ``Rngs(0)``, ``Rngs(params=0, dropout=1)``, ``Rngs(key)``.

    ``rngs.params()`` draws from the ``params`` stream, ``rngs()`` from
    ``default``. A stream that does not exist falls back to ``default`` when
    there is one; otherwise the error lists the streams there are.

    >>> from ramie.core import Rngs
    >>> rngs = Rngs(0, dropout=1)
    >>> k1, k2 = rngs.params(), rngs.params()   # 'params' falls back to 'default'
    >>> sorted(rngs.streams())
    ['default', 'dropout']
    """

    def __init__(self, default: Any = None, /, **streams: Any):
        if default is not None:
            streams = {"default": default, **streams}
        for name, seed in streams.items():
            if not name.isidentifier() or name.startswith("_") or name in _RESERVED:
                raise ValueError(
                    _errors.BAD_RNG_NAME.format(name=name, reserved=", ".join(sorted(_RESERVED)))
                )
            if isinstance(seed, RngStream):
                stream = seed
            else:
                stream = RngStream(seed, tag=name)
            setattr(self, name, stream)

    def __getattr__(self, name: str) -> RngStream:
        if name.startswith("_"):
            raise AttributeError(name)
        d = self.__dict__
        if "default" in d:
            return d["default"]
        streams = sorted(k for k, v in d.items() if isinstance(v, RngStream))
        raise _errors.RngStreamError(
            _errors.NO_RNG_STREAM.format(
                name=name,
                streams=streams,
                example=", ".join([f"{s}=0" for s in streams] + [f"{name}=1"]),
            )
        )

    def __getitem__(self, name: str) -> RngStream:
        return getattr(self, name)

    def __contains__(self, name: str) -> bool:
        return isinstance(self.__dict__.get(name), RngStream)

    def __call__(self) -> jax.Array:
        return self.default()

    def streams(self) -> Iterator[str]:
        """The names of the streams this Rngs holds."""
        return (k for k, v in self.__dict__.items() if isinstance(v, RngStream))

    def items(self) -> Iterator[tuple[str, RngStream]]:
        return ((k, v) for k, v in self.__dict__.items() if isinstance(v, RngStream))

    def fork(self, split: int | tuple[int, ...] | Mapping[str, Any] | None = None) -> Rngs:
        """A new Rngs whose streams are independent of (and advance) these.

        With ``split=n`` every stream holds ``n`` stacked keys, ready for
        ``vmap``: each copy draws different keys. ``split`` may also be a
        mapping from stream name to its split (``None`` keeps it unsplit).

        >>> from ramie.core import Rngs
        >>> forked = Rngs(0).fork(split=5)
        >>> forked.default.key.value.shape
        (5,)
        """
        out = {}
        for name, stream in self.items():
            n = split.get(name) if isinstance(split, Mapping) else split
            out[name] = stream.fork(n)
        return Rngs(**out)

    def split_keys(self, name: str, n: int | tuple[int, ...]) -> jax.Array:
        """``n`` keys drawn from stream ``name`` in one step (stacked on axis 0)."""
        return jax.random.split(getattr(self, name)(), n)
