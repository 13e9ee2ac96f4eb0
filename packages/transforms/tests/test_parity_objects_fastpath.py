"""nn.jit keeps reference semantics now that Modules are also JAX pytrees (issue 14)."""

import warnings

import jax.numpy as jnp
import numpy as np

from ramie import core
from ramie.transforms import jit


class Counter(core.Module):
    def __init__(self):
        self.count = core.Variable(jnp.array(0))


def test_an_object_where_the_last_call_had_an_array_is_still_an_object():
    @jit
    def f(a, b):
        a.count += 1
        if isinstance(b, core.Module):
            b.count += 10
            return b.count.value
        return b

    a, b = Counter(), Counter()
    x = jnp.ones(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ClosureReadWarning: b is an argument
        np.testing.assert_allclose(f(a, x), x)
        np.testing.assert_allclose(f(a, x), x)  # the remembered fast path
        for expected in (10, 20, 30):  # the fast path's layout does not fit: b is an object
            assert int(f(a, b)) == expected
    # the mutations reached the caller's objects (reference semantics, not a pytree copy)
    assert int(a.count.value) == 5 and int(b.count.value) == 30


def test_a_donated_call_falls_back_before_anything_is_donated():
    # The fast path hands JAX the new object as a pytree; the layout refuses it while
    # tracing, before the donated model's buffers are given away, so the full path
    # still finds them alive.
    @jit(donate_argnums=0)
    def f(a, b):
        a.count += 1
        if isinstance(b, core.Module):
            b.count += 10
            return b.count.value
        return b

    a, b = Counter(), Counter()
    x = jnp.ones(2)
    np.testing.assert_allclose(f(a, x), x)
    np.testing.assert_allclose(f(a, x), x)
    assert int(f(a, b)) == 10
    assert not a.count.value.is_deleted()
    assert int(a.count.value) == 3 and int(b.count.value) == 10
    np.testing.assert_allclose(f(a, x), x)  # and back to arrays
    assert int(a.count.value) == 4
