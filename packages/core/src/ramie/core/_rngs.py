"""Rngs: named streams of PRNG keys whose key and counter are state.

Each stream is a key plus a counter. Calling a stream returns
``fold_in(key, counter)`` and increments the counter, so consecutive calls
give different keys and the advance is recorded in State (it propagates out of
transforms like any other Variable).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
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

    def fork(self, *, split: int | tuple[int, ...] | None = None) -> RngStream:
        """A new, independent stream (advancing this one); ``split`` stacks n of them."""
        key = self()
        if split is not None:
            key = jax.random.split(key, split)
        return RngStream(key, tag=self.tag)

    def split(self, k: int | tuple[int, ...]) -> RngStream:
        """A new stream of ``k`` stacked independent keys (for ``vmap``); advances this one.

        >>> from ramie.core import Rngs
        >>> rngs = Rngs(params=0)
        >>> rngs.params.split(4).key.value.shape, int(rngs.params.count.value)
        ((4,), 1)
        """
        return RngStream(jax.random.split(self(), k), tag=self.tag)

    def broadcast(self, k: int | tuple[int, ...]) -> RngStream:
        """A new stream holding one new key repeated to shape ``k`` (every copy draws alike).

        >>> from ramie.core import Rngs
        >>> s = Rngs(params=0).params.broadcast(3)
        >>> keys = jax.random.key_data(s())
        >>> bool((keys[0] == keys[2]).all())
        True
        """
        key = self()
        shape = (k,) if isinstance(k, int) else tuple(k)
        return RngStream(jnp.broadcast_to(key, shape + key.shape), tag=self.tag)


#: ``jax.random`` samplers offered as methods of streams and Rngs: each draws one key.
SAMPLERS = (
    "ball", "bernoulli", "beta", "binomial", "bits", "categorical", "cauchy", "chisquare",
    "choice", "dirichlet", "double_sided_maxwell", "exponential", "f", "gamma",
    "generalized_normal", "geometric", "gumbel", "laplace", "loggamma", "logistic",
    "lognormal", "maxwell", "multinomial", "multivariate_normal", "normal", "orthogonal",
    "pareto", "permutation", "poisson", "rademacher", "randint", "rayleigh", "t",
    "triangular", "truncated_normal", "uniform", "wald", "weibull_min",
)  # fmt: skip
#: ``jax.nn.initializers`` offered as methods: ``rngs.lecun_normal()`` is an initializer
#: ``init(shape, dtype=float32)`` drawing a key from the stream each time it is called.
INITIALIZERS = (
    "delta_orthogonal", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
    "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform", "variance_scaling",
    "xavier_normal", "xavier_uniform",
)  # fmt: skip


def _sampler(name: str, owner: str) -> Callable:
    fn = getattr(jax.random, name)

    def sample(self, *args: Any, **kwargs: Any) -> jax.Array:
        return fn(_stream_of(self)(), *args, **kwargs)

    sample.__name__, sample.__qualname__ = name, f"{owner}.{name}"
    sample.__doc__ = (
        f"``jax.random.{name}`` with the next key of this stream (the key argument "
        "left out); the stream's counter advances by one."
    )
    return sample


def _initializer(name: str, owner: str) -> Callable:
    make = getattr(jax.nn.initializers, name)

    def initializer(self, *args: Any, **kwargs: Any) -> Callable:
        init, stream = make(*args, **kwargs), _stream_of(self)

        def keyless(shape: Any, dtype: Any = jnp.float32, **kw: Any) -> jax.Array:
            return init(stream(), shape, dtype, **kw)

        return keyless

    initializer.__name__, initializer.__qualname__ = name, f"{owner}.{name}"
    initializer.__doc__ = (
        f"``jax.nn.initializers.{name}(*args, **kwargs)`` as a keyless initializer "
        "``init(shape, dtype)`` that draws its key from this stream at each call."
    )
    return initializer


def _stream_of(obj: Any) -> RngStream:
    return obj if isinstance(obj, RngStream) else obj.default


for _name in SAMPLERS:
    setattr(RngStream, _name, _sampler(_name, "RngStream"))
for _name in INITIALIZERS:
    setattr(RngStream, _name, _initializer(_name, "RngStream"))


def _fold(stream: RngStream) -> jax.Array:
    keys, counts = stream.key.value, stream.count.value
    folded = jax.vmap(jax.random.fold_in)(keys.reshape(-1), counts.reshape(-1))
    return folded.reshape(keys.shape)


_RESERVED = (
    frozenset(["fork", "split", "streams", "items", "split_keys"])
    | frozenset(SAMPLERS)
    | frozenset(INITIALIZERS)
    | frozenset(dir(Module))
)


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

    Every ``jax.random`` sampler is a method of streams and of Rngs (which
    uses ``default``), drawing one key: ``rngs.normal((2, 3))``,
    ``rngs.dropout.bernoulli(0.9, (4,))``; so are the ``jax.nn.initializers``
    (``rngs.params.lecun_normal()((3, 4))``).

    >>> rngs.normal((2, 3)).shape, int(rngs.default.count.value)
    ((2, 3), 3)
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

    def fork(self, *, split: int | tuple[int, ...] | Mapping[Any, Any] | None = None) -> Rngs:
        """A new Rngs whose streams are independent of (and advance) these.

        With ``split=n`` every stream holds ``n`` stacked keys, ready for
        ``vmap``: each copy draws different keys. ``split`` may also be a
        mapping from a stream name (or ``...`` for every other stream) to its
        split (``None`` keeps it unsplit); the first matching entry wins.

        >>> from ramie.core import Rngs
        >>> forked = Rngs(0).fork(split=5)
        >>> forked.default.key.value.shape
        (5,)
        """
        out = {}
        for name, stream in self.items():
            n = rule_for(split, name) if isinstance(split, Mapping) else split
            out[name] = stream.fork(split=n)
        return Rngs(**out)

    def split(self, k: int | tuple[int, ...] | Mapping[Any, Any]) -> Rngs:
        """A new Rngs whose streams hold ``k`` stacked keys each (advancing these).

        ``k`` may be a mapping like ``fork``'s ``split``: stream name (or
        ``...``) to a split, ``None`` forking that stream unsplit.

        >>> from ramie.core import Rngs
        >>> new = Rngs(params=1, dropout=2).split({"params": 5, ...: None})
        >>> new.params.key.value.shape, new.dropout.key.value.shape
        ((5,), ())
        """
        return self.fork(split=k)

    def split_keys(self, name: str, n: int | tuple[int, ...]) -> jax.Array:
        """``n`` keys drawn from stream ``name`` in one step (stacked on axis 0)."""
        return jax.random.split(getattr(self, name)(), n)


for _name in SAMPLERS:
    setattr(Rngs, _name, _sampler(_name, "Rngs"))
for _name in INITIALIZERS:
    setattr(Rngs, _name, _initializer(_name, "Rngs"))


def rule_for(rules: Mapping[Any, Any], name: str, default: Any = None) -> Any:
    """The value of the first entry of ``rules`` matching stream ``name``.

    A key matches when it is ``name``, ``...`` or ``True``, or a tuple/list
    holding a match; ``default`` when nothing matches.
    """
    for key, value in rules.items():
        if _matches(key, name):
            return value
    return default


def _matches(key: Any, name: str) -> bool:
    if key is Ellipsis or key is True or key == name:
        return True
    if isinstance(key, (tuple, list)):
        return any(_matches(k, name) for k in key)
    return False
