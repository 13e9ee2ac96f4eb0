"""Models used through jit are freed once dead, even with cycles and raw arrays (issue 11)."""

import gc
import weakref

import jax.numpy as jnp
import numpy as np

from ramie import core
from ramie import transforms as tx


class Net(core.Module):
    def __init__(self, n: int):
        self.w = core.Param(jnp.ones(n))
        self.raw = np.ones(n)
        self.child = core.Module()
        self.child.parent = self  # a reference cycle


@tx.jit
def step(m, x):
    m.w.value = m.w.value + x
    return (m.w.value * m.raw).sum()


def test_dead_models_called_through_jit_are_freed():
    refs = []
    for i in range(10):
        m = Net(2 + i % 2)
        assert float(step(m, 1.0)) == 2.0 * (2 + i % 2)
        refs.append(weakref.ref(m))
        del m
    gc.collect()
    assert [r() for r in refs] == [None] * 10
    core.clear_caches()
