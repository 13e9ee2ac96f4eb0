"""Transforms traced at the same time in several threads (issue 11).

Trace state (the transform frames) is per thread, so one thread's frame never
makes another thread's correct mutation look like a captured one.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core
from ramie import transforms as tx
from ramie.core import extend

THREADS = 8


class Counter(core.Module):
    def __init__(self, scale: float):
        self.w = core.Param(jnp.full((3,), scale))
        self.count = core.BatchStat(jnp.zeros(()))


def _jit_step(barrier):
    @tx.jit
    def step(m, x):
        barrier.wait(timeout=60)  # every thread is tracing now, inside its frame
        m.count.value = m.count.value + 1  # a legal mutation of an argument
        m.w.value = m.w.value * 2
        return (m.w.value * x).sum()

    return step


def _grad_step(barrier):
    def loss(m, x):
        barrier.wait(timeout=60)
        m.count.value = m.count.value + 1
        return (m.w.value * x).sum() ** 2

    return tx.grad(loss)


def _vmap_step(barrier):
    def f(m, x):
        barrier.wait(timeout=60)
        m.count.value = m.count.value + 1
        return m.w.value * x

    return tx.vmap(f, in_axes=(None, 0))


def _run_one(kind: str, i: int, barrier) -> tuple:
    m = Counter(float(i + 1))
    x = jnp.arange(3.0) + i
    if kind == "jit":
        out = _jit_step(barrier)(m, x)
        expected = float((2 * (i + 1) * np.asarray(x)).sum())
        return float(out), expected, float(m.count.value), float(m.w.value[0]), 2.0 * (i + 1)
    if kind == "grad":
        g = _grad_step(barrier)(m, x)
        s = float(((i + 1) * np.asarray(x)).sum())
        return float(g["w"].value[1]), 2 * s * float(x[1]), float(m.count.value), 0.0, 0.0
    out = _vmap_step(barrier)(m, jnp.stack([x, x + 1]))
    expected = float((i + 1) * (np.asarray(x)[2] + 1))
    return float(out[1, 2]), expected, float(m.count.value), 0.0, 0.0


@pytest.mark.parametrize("kinds", [("jit",), ("jit", "grad", "vmap")])
def test_transforms_traced_concurrently_in_threads_are_correct(kinds):
    for _ in range(3):
        barrier = threading.Barrier(THREADS)
        jobs = [(kinds[i % len(kinds)], i) for i in range(THREADS)]
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(_run_one, *zip(*jobs, strict=True), [barrier] * THREADS))
        for (kind, i), (got, expected, count, w, w_expected) in zip(jobs, results, strict=True):
            assert got == pytest.approx(expected), (kind, i)
            assert count == 1.0, (kind, i)  # the mutation reached the caller's object
            assert w == pytest.approx(w_expected), (kind, i)
    assert core._frames.ACTIVE == [0]


def test_a_captured_mutation_is_still_refused_in_a_thread_while_another_traces():
    captured = Counter(1.0)
    barrier = threading.Barrier(2)

    @tx.jit
    def bad(x):
        barrier.wait(timeout=60)
        captured.w.value = x  # captured, not an argument: refused in this thread
        return x

    def good_trace():
        return _jit_step(barrier)(Counter(2.0), jnp.ones(3))

    with ThreadPoolExecutor(2) as pool:
        good = pool.submit(good_trace)
        failing = pool.submit(bad, jnp.ones(3))
        assert float(good.result()) == pytest.approx(12.0)
        with pytest.raises(core.CapturedMutationError, match="inside ramie.transforms.jit"):
            failing.result()
    np.testing.assert_array_equal(captured.w.value, np.ones(3))


def test_frames_of_one_thread_are_invisible_to_another():
    inside = threading.Event()
    release = threading.Event()
    seen = []

    def hold_a_frame():
        with extend.transform_frame("jit"):
            inside.set()
            release.wait(timeout=60)

    t = threading.Thread(target=hold_a_frame)
    t.start()
    inside.wait(timeout=60)
    try:
        seen.append(list(core._frames.frames()))
        p = core.Param(jnp.zeros(2))  # not owned by the other thread's frame
        jax.jit(lambda x: x)(jnp.ones(2))
        p.value = jnp.ones(2)
    finally:
        release.set()
        t.join()
    assert seen == [[]]
