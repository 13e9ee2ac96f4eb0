"""Core's caches are bounded, hold models weakly, and clear_caches() empties them (issue 11)."""

import gc
import weakref

import jax.numpy as jnp
import numpy as np

from ramie import core
from ramie.core import _caches, _codegen, _graph


class Net(core.Module):
    def __init__(self, n: int):
        self.w = core.Param(jnp.ones(n))
        self.raw = np.ones(n)  # a raw array attribute: a slot in the cached structure
        self.pair = (np.zeros(2), [np.ones(1)])  # raw arrays inside a tuple and a List
        self.child = core.Module()
        self.child.parent = self  # a reference cycle
        self.child.table = {"a": np.ones(3)}


def _use(m):
    core.state(m)
    _, params, rest = core.split(m, core.Param, ...)
    core.update(m, params, rest)
    core.graphdef(m)
    core.flatten((m, m.child))


def test_dead_models_with_cycles_and_raw_arrays_are_freed():
    refs = []
    for i in range(20):
        m = Net(i + 1)
        _use(m)
        refs.append(weakref.ref(m))
        del m
    gc.collect()
    assert [r() for r in refs] == [None] * 20
    live_roots = {id(r()) for fg in _graph._CACHE.values() for r in fg._roots if r()}
    assert not live_roots & {id(r) for r in refs}


def test_a_cached_structure_does_not_keep_its_raw_arrays_alive():
    m = Net(3)
    fg = core.flatten(m)
    big = weakref.ref(m.child.table)
    assert fg.values()[1].shape == (3,)
    del m
    gc.collect()
    assert big() is None


def test_caches_are_bounded():
    sizes = {c.name: c.size for c in _caches._ALL}
    assert sizes["structures"] == 512 and sizes["builders"] == 1024
    keep = [Net(1) for _ in range(600)]
    for m in keep:
        core.flatten(m)
    assert len(_graph._CACHE) <= 512
    assert all(len(c) <= c.size for c in _caches._ALL)


def test_clear_caches_empties_every_core_cache():
    m = Net(2)
    _use(m)
    assert len(_graph._CACHE) and len(_codegen._CACHE)
    core.clear_caches()
    assert all(len(c) == 0 for c in _caches._ALL)
    assert float(core.state(m)["w"].value.sum()) == 2.0  # rebuilt on demand
