"""``static_argnums``/``static_argnames`` and ``donate_*`` resolved as ``jax.jit`` does.

Numbers and names complete each other through the function's signature: when
only one of the pair is given, the other is inferred from the parameters that
can be passed either way (positional-or-keyword), so ``static_argnames=('flag',)``
also applies when ``flag`` is passed by position. When both are given they are
used as given. Numbers are checked against the signature, de-duplicated and
sorted; a negative number counts from the end of the positional arguments of
each call.

>>> def f(x, flag=False, *, scale=1.0):
...     return x
>>> resolve(f, None, "flag", None, None)
ArgNums(static_nums=(1,), static_names=('flag',), donate_nums=(), donate_names=())
>>> resolve(f, (-1, 0, 0), None, None, None).static_nums
(0, -1)
>>> at_call((-1, 0), 3)
frozenset({0, 2})
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from . import _errors

_EITHER = inspect.Parameter.POSITIONAL_OR_KEYWORD
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, _EITHER)
_KEYWORD = (_EITHER, inspect.Parameter.KEYWORD_ONLY)


class ArgNums(NamedTuple):
    """The resolved static and donated arguments of a jitted function."""

    static_nums: tuple[int, ...]
    static_names: tuple[str, ...]
    donate_nums: tuple[int, ...]
    donate_names: tuple[str, ...]


def _nums(x: int | Iterable[int] | None) -> tuple[int, ...] | None:
    if x is None:
        return None
    if isinstance(x, int):
        return (x,)
    return tuple(_index(i) for i in x)


def _index(i: Any) -> int:
    if isinstance(i, bool) or not isinstance(i, int):
        raise _errors.TransformArgumentError(_errors.ARGNUM_TYPE.format(found=repr(i)))
    return i


def _names(x: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if x is None:
        return None
    if isinstance(x, str):
        return (x,)
    return tuple(x)


def _infer(sig, nums, names) -> tuple[tuple[int, ...], tuple[str, ...]]:
    if nums is None and names is None:
        return (), ()
    if sig is None or (nums is not None and names is not None):
        return nums or (), names or ()
    either = [(i, k) for i, (k, p) in enumerate(sig.parameters.items()) if p.kind == _EITHER]
    if nums is None:
        return tuple(i for i, k in either if k in names), names
    return nums, tuple(k for i, k in either if i in nums)


def _check_nums(sig, nums: tuple, option: str, fun: Callable) -> None:
    if sig is None or not nums:
        return
    params = sig.parameters.values()
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params):
        return
    count = sum(p.kind in _POSITIONAL for p in params)
    if min(nums) < -count or max(nums) >= count:
        raise _errors.TransformArgumentError(
            _errors.ARGNUMS_SIGNATURE.format(option=option, nums=nums, name=_name(fun), count=count)
        )


def _check_names(sig, names: tuple, option: str, fun: Callable) -> None:
    if sig is None or not names:
        return
    params = sig.parameters
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        allowed = {k for k, p in params.items() if p.kind != inspect.Parameter.POSITIONAL_ONLY}
        unknown = [n for n in names if n in params and n not in allowed]
    else:
        allowed = {k for k, p in params.items() if p.kind in _KEYWORD}
        unknown = [n for n in names if n not in allowed]
    if unknown:
        raise _errors.TransformArgumentError(
            _errors.ARGNAMES_SIGNATURE.format(
                option=option, names=unknown, name=_name(fun), allowed=sorted(allowed)
            )
        )


def _name(fun: Callable) -> str:
    return getattr(fun, "__qualname__", None) or repr(fun)


def _sorted(nums: tuple) -> tuple:
    # Non-negative first, then negative: each group in increasing order, no repeats.
    return tuple(sorted(set(nums), key=lambda i: (i < 0, i)))


def resolve(
    fun: Callable,
    static_argnums: int | Iterable[int] | None,
    static_argnames: str | Iterable[str] | None,
    donate_argnums: int | Iterable[int] | None,
    donate_argnames: str | Iterable[str] | None,
) -> ArgNums:
    """Complete, check and normalise ``jit``'s static and donated arguments."""
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):  # some builtins have no signature
        sig = None
    snums, snames = _infer(sig, _nums(static_argnums), _names(static_argnames))
    dnums, dnames = _infer(sig, _nums(donate_argnums), _names(donate_argnames))
    _check_nums(sig, snums, "static_argnums", fun)
    _check_nums(sig, dnums, "donate_argnums", fun)
    _check_names(sig, snames, "static_argnames", fun)
    _check_names(sig, dnames, "donate_argnames", fun)
    both = set(snames) & set(dnames)
    if both:
        raise _errors.TransformArgumentError(
            _errors.STATIC_AND_DONATED.format(names=sorted(both), name=_name(fun))
        )
    return ArgNums(_sorted(snums), tuple(dict.fromkeys(snames)), _sorted(dnums), dnames)


def at_call(nums: tuple[int, ...], nargs: int) -> frozenset[int]:
    """``nums`` as indices into a call with ``nargs`` positional arguments."""
    return frozenset(i + nargs if i < 0 else i for i in nums if -nargs <= i < nargs)
