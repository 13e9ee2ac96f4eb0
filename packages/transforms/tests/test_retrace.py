"""Eager scan, loops and branches trace an unchanged body once, not on every call (issue 11)."""

import gc
import weakref

import jax.numpy as jnp
import numpy as np
from transform_models import Linear

from ramie import core
from ramie.transforms import Carry, _cache, cond, fori_loop, scan, switch, while_loop


class Acc(core.Module):
    def __init__(self):
        self.total = core.Variable(jnp.zeros(()))  # not weakly typed: one carry type


def test_eager_scan_traces_an_unchanged_body_once():
    traces = []

    @scan(in_axes=(Carry, 0, None), out_axes=(Carry, 0))
    def step(acc, x, scale):
        traces.append(scale)
        acc.total.value += x * scale
        return acc, acc.total.value

    acc = Acc()
    for i in range(3):
        _, ys = step(acc, jnp.arange(3.0), jnp.array(2.0 + i))
    # the broadcast array is a new value each call, yet the body is not traced again
    assert len(traces) == 1
    np.testing.assert_allclose(float(acc.total.value), 3 * 2 + 3 * 3 + 3 * 4)
    np.testing.assert_allclose(ys, [15.0, 19.0, 27.0])  # the running totals of the last call
    step(acc, jnp.arange(4.0), jnp.array(1.0))  # a longer scan: the same body
    assert len(traces) == 1
    step(acc, jnp.arange(4.0), jnp.ones((), jnp.bfloat16))  # a new dtype: traced again
    assert len(traces) == 2


def test_scan_broadcast_python_values_stay_static_and_retrace_when_they_change():
    traces = []

    @scan(in_axes=(Carry, 0, None), out_axes=Carry)
    def step(acc, x, power):
        traces.append(power)
        acc.total.value += x**power  # a Python int: static inside the body
        return acc

    acc = Acc()
    step(acc, jnp.arange(3.0), 2)
    step(acc, jnp.arange(3.0), 2)
    step(acc, jnp.arange(3.0), 3)
    assert traces == [2, 3]
    assert float(acc.total.value) == 5.0 + 5.0 + 9.0


def test_eager_fori_and_while_loops_trace_once():
    traces = []

    def body(i, acc):
        traces.append("fori")
        acc.total.value += i
        return acc

    def keep_going(acc):
        traces.append("cond")
        return acc.total.value < 100

    def double(acc):
        traces.append("while")
        acc.total.value = acc.total.value * 2 + 1
        return acc

    acc = Acc()
    for _ in range(3):
        fori_loop(0, 4, body, acc)
        while_loop(keep_going, double, acc)
    assert traces.count("fori") == 1
    assert traces.count("cond") == 1 and traces.count("while") == 1
    assert float(acc.total.value) > 100


def test_eager_cond_and_switch_trace_each_branch_once():
    traces = []

    def up(m):
        traces.append("up")
        m.total.value += 1

    def down(m):
        traces.append("down")
        m.total.value -= 1

    acc = Acc()
    for flag in [True, False, True]:
        cond(flag, up, down, acc)
        switch(int(flag), [down, up, up], acc)
    assert sorted(traces) == ["down", "down", "up", "up", "up"]
    assert float(acc.total.value) == 2.0


def test_cached_bodies_hold_neither_the_function_nor_the_objects():
    def run():
        model = Linear(2, 2, rngs=core.Rngs(0))

        def body(i, m):  # closes over the model
            m.bias.value = m.bias.value + model.kernel.value.sum()
            return m

        fori_loop(0, 2, body, model)
        return weakref.ref(model), weakref.ref(body)

    model_ref, body_ref = run()
    gc.collect()
    assert model_ref() is None and body_ref() is None
    assert len(_cache.BODIES) >= 1  # the traced body is still cached, holding neither
