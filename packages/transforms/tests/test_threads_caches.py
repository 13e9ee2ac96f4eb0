"""Transforms' own caches (layouts, traced bodies) used from several threads at once."""

import threading
from concurrent.futures import ThreadPoolExecutor

import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core
from ramie import transforms as tx
from ramie.transforms import _jit

THREADS = 8
CALLS = 10


class Sized(core.Module):
    def __init__(self, n: int, tag: str):
        self.w = core.Param(jnp.arange(float(n)))
        self.steps = core.BatchStat(jnp.zeros(()))
        self.tag = tag  # static: a new structure (and layout) per tag


@tx.jit
def _shared_step(m, x):
    m.steps.value = m.steps.value + 1
    m.w.value = m.w.value * x
    return m.w.value.sum()


@tx.scan(in_axes=(tx.Carry, 0), out_axes=tx.Carry)
def _scan_sum(m, x):
    m.steps.value = m.steps.value + x
    return m


def _body(i, m):
    m.w.value = m.w.value + i
    return m


def _work(i: int, barrier) -> list:
    barrier.wait(timeout=60)
    errors = []
    for k in range(CALLS):
        # one function, many layouts: more distinct structures than MAX_LAYOUTS over
        # all threads, so inserts and evictions race with lookups
        n = 2 + (i + k) % 5
        m = Sized(n, f"t{i}-{k}")
        got = float(_shared_step(m, 2.0))
        if got != pytest.approx(2 * n * (n - 1) / 2) or float(m.steps.value) != 1.0:
            errors.append(("jit", i, k, got))
        _scan_sum(m, jnp.arange(3.0))
        if float(m.steps.value) != 4.0:
            errors.append(("scan", i, k, float(m.steps.value)))
        tx.fori_loop(0, 3, _body, m)
        np.testing.assert_allclose(m.w.value, 2 * np.arange(n) + 3)
    return errors


def test_shared_jit_layouts_and_traced_bodies_from_threads():
    assert THREADS * CALLS > _jit.MAX_LAYOUTS  # enough structures to evict
    barrier = threading.Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(_work, range(THREADS), [barrier] * THREADS))
    assert results == [[]] * THREADS
    assert len(_shared_step._ramie_jit._layouts) <= _jit.MAX_LAYOUTS
