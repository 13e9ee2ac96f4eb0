"""``jit``'s static and donated arguments behave as ``jax.jit``'s (issue 11)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core
from ramie.transforms import TransformArgumentError, jit
from ramie.transforms import _errors as terrors


class Counter(core.Module):
    def __init__(self):
        self.n = core.Variable(jnp.array(0))


def _traced(counter):
    def f(x, flag=False, scale=1):
        counter.append((flag, scale))
        if flag:  # a Python branch: only works when flag is static
            return x * scale
        return -x * scale

    return f


def test_static_argname_applies_when_passed_by_position():
    traces = []
    f = jit(_traced(traces), static_argnames=("flag",))
    assert float(f(jnp.array(2.0), True)) == 2.0
    assert float(f(jnp.array(2.0), False)) == -2.0
    assert float(f(jnp.array(3.0), flag=True)) == 3.0  # by name: the same static value
    assert float(f(jnp.array(3.0), True)) == 3.0
    assert [t[0] for t in traces] == [True, False, True]
    want = jax.jit(_traced([]), static_argnames=("flag",))
    assert float(want(jnp.array(2.0), True)) == 2.0


def test_static_argnums_infers_the_name_and_accepts_none():
    traces = []
    f = jit(_traced(traces), static_argnums=1, static_argnames=None)
    assert float(f(jnp.array(2.0), flag=True)) == 2.0
    assert float(f(jnp.array(2.0), True)) == 2.0
    assert len(traces) == 2  # positional and keyword arguments are different calls
    g = jit(_traced([]), static_argnums=None, static_argnames=None)
    assert float(g(jnp.array(2.0))) == -2.0


def test_negative_unsorted_and_repeated_static_argnums():
    traces = []
    f = jit(_traced(traces), static_argnums=(-1, 1, 1, -1))
    assert f._ramie_jit.static_argnums == (1, -1)
    assert f._ramie_jit.static_argnames == ("flag",)  # -1 names no parameter by itself
    assert float(f(jnp.array(2.0), True, 3)) == 6.0
    assert float(f(jnp.array(2.0), True, 4)) == 8.0
    assert traces == [(True, 3), (True, 4)]
    # -1 is the last positional argument of each call, as in jax.jit
    assert float(f(jnp.array(2.0), True)) == 2.0


def test_static_argnums_out_of_range_and_static_and_donated():
    with pytest.raises(TransformArgumentError) as info:
        jit(_traced([]), static_argnums=3)
    assert str(info.value) == terrors.ARGNUMS_SIGNATURE.format(
        option="static_argnums", nums=(3,), name=_traced([]).__qualname__, count=3
    )
    with pytest.raises(TransformArgumentError, match="both static and donated"):
        jit(_traced([]), static_argnames="flag", donate_argnums=1)
    with pytest.raises(TransformArgumentError, match="must be ints"):
        jit(_traced([]), static_argnums="flag")
    with pytest.raises(TransformArgumentError) as info:
        jit(_traced([]), static_argnames=("flg",))
    assert str(info.value) == terrors.ARGNAMES_SIGNATURE.format(
        option="static_argnames",
        names=["flg"],
        name=_traced([]).__qualname__,
        allowed=["flag", "scale", "x"],
    )
    jit(lambda x, **kw: x, static_argnames="anything")  # **kwargs takes any name


def test_donate_argnums_and_argnames_complete_each_other():
    @jit(donate_argnames="c")
    def f(c, x):
        c.n.value = c.n.value + x
        return c.n.value

    c = Counter()
    old = c.n.value
    f(c, jnp.array(2))  # c donated although passed by position
    assert old.is_deleted() and int(c.n.value) == 2

    double = jit(lambda c, x: x * 2, donate_argnums=-1)
    kept = Counter()
    x = jnp.ones(3)
    np.testing.assert_array_equal(double(kept, x), [2.0, 2.0, 2.0])
    assert x.is_deleted() and not kept.n.value.is_deleted()
    x = jnp.ones(3)
    np.testing.assert_array_equal(double(kept, x=x), [2.0, 2.0, 2.0])
    assert not x.is_deleted()  # as jax.jit: -1 names no parameter, so a keyword x is kept


def test_donated_and_static_arguments_together_on_the_general_path():
    @jit(static_argnums=0, donate_argnums=2)
    def f(k, c, x):
        c.n.value = c.n.value + k
        return x * k

    c = Counter()
    x = jnp.ones(2)
    np.testing.assert_array_equal(f(3, c, x), [3.0, 3.0])
    assert x.is_deleted() and int(c.n.value) == 3
