"""Transforms' caches are bounded and hold user objects only weakly (issue 11)."""

import gc
import weakref

import jax.numpy as jnp

from ramie import core
from ramie import transforms as tx
from ramie.core import extend
from ramie.transforms import _jit


class Cyclic(core.Module):
    """A raw array attribute and a reference cycle: the case that leaked."""

    def __init__(self, scale: float):
        self.w = core.Param(jnp.full((4,), scale))
        self.raw = jnp.zeros(4)
        self.me = self


@tx.jit
def _step(m, x):
    m.w.value = m.w.value + x
    return m.raw.sum() + m.w.value.sum()


@tx.jit(donate_argnums=0)
def _pair(m, other):
    m.w.value = m.w.value * 2
    return other.w.value.sum()


def _use(m):
    _step(m, 1.0)
    _pair(m, Cyclic(0.0))
    tx.grad(lambda m: (m.w.value * m.raw).sum())(m)
    tx.vmap(lambda m, x: m.w.value * x, in_axes=(None, 0))(m, jnp.ones(2))
    tx.fori_loop(0, 2, lambda i, m: m, m)


def _alive(refs):
    gc.collect()
    return sum(r() is not None for r in refs)


def test_transforms_keep_no_dead_model_alive():
    refs = []
    for i in range(16):
        m = Cyclic(float(i))
        _use(m)
        refs.append(weakref.ref(m))
    del m
    # Push the models' structures out of core's structure cache (bounded, documented
    # size): after that, only something in ramie.transforms could still hold them.
    throwaway = [Cyclic(0.0) for _ in range(600)]
    for t in throwaway:
        extend.flatten(t)
    del throwaway, t
    assert _alive(refs) == 0


def test_512_dead_models_with_raw_arrays_and_cycles_are_freed():
    refs = []
    for i in range(512):
        m = Cyclic(float(i))
        _step(m, 1.0)
        _pair(m, m)
        refs.append(weakref.ref(m))
    del m
    assert _alive(refs) == 0


class WithConfig(core.Module):
    def __init__(self, config: str):
        self.w = core.Param(jnp.ones(2))
        self.config = config  # a static attribute: part of the structure


def _live_layouts():
    gc.collect()
    return sum(type(o) is _jit.Layout for o in gc.get_objects())


def test_one_static_value_per_instance_keeps_at_most_max_layouts():
    @tx.jit
    def f(m):
        return m.w.value.sum()

    before = _live_layouts()
    models = [WithConfig(f"config {i}") for i in range(_jit.MAX_LAYOUTS + 40)]
    for m in models:
        assert float(f(m)) == 2.0
    assert len(f._ramie_jit._layouts) == _jit.MAX_LAYOUTS
    assert _live_layouts() - before <= _jit.MAX_LAYOUTS + 1  # + the last call's
    assert float(f(models[0])) == 2.0  # evicted: compiled again, still right
    tx.clear_caches()
    assert len(f._ramie_jit._layouts) == 0
    assert float(f(models[1])) == 2.0


def test_clear_caches_is_cores_and_empties_traced_bodies_too():
    from ramie.transforms import _cache

    assert tx.clear_caches is core.clear_caches
    tx.fori_loop(0, 2, _identity, Cyclic(1.0))
    assert len(_cache.BODIES) >= 1
    core.clear_caches()
    assert len(_cache.BODIES) == 0


def _identity(i, m):
    return m
