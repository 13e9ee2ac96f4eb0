"""``extend.fast_caller``: a transform's per-call fast path, in one Python frame.

It reads the kept list and writes the new values back inlined (copies of
``FlatGraph._kept`` and ``FlatGraph.write_all``), so these tests hold it to
the same promises: the values it hands out are the Variables' current ones,
every new value lands in its Variable, a wrong-length list is refused before
anything is written, and anything it does not recognise goes to ``slow``.
"""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ramie.core as core
from ramie.core import _flatgraph, _valuecache, extend


class Pair(core.Module):
    def __init__(self):
        self.a = core.Param(jnp.zeros(2))
        self.b = core.BatchStat(jnp.zeros(2))


def _as_list(values):
    return [np.asarray(v).tolist() for v in values]


class Recorder:
    """``invoke``, ``slow`` and ``other`` for a fast caller, recording their calls."""

    def __init__(self, result=None):
        self.seen, self.returned, self.slow_calls, self.other_calls = [], [], [], []
        self.result = result  # None: add ``k`` to every value and return the first's sum

    def invoke(self, values, k):
        self.seen.append(values)
        if self.result is not None:
            return self.result
        self.returned.append([v + k for v in values])
        return self.returned[-1], float(values[0].sum())

    def slow(self, args, kwargs):
        self.slow_calls.append((args, kwargs))
        return "slow"

    def other(self, extra, fg, new, out, args):
        self.other_calls.append((extra, fg, new, out, args))
        return "other"


def _caller(obj, rec, retry=(TypeError,), extra=None):
    last = [
        extend.FastCall(
            same=lambda args: len(args) == 2 and args[0] is obj,
            graph=weakref.ref(extend.flatten(obj)),
            invoke=rec.invoke,
            rest=lambda args: args[1],
            extra=extra,
        )
    ]
    return extend.fast_caller(last, rec.slow, rec.other, retry), last


def test_the_new_values_are_written_back_and_handed_to_the_next_call():
    m, rec = Pair(), Recorder()
    call, _ = _caller(m, rec)
    assert call(m, 1.0) == 0.0
    assert float(m.a.value[0]) == 1.0 and float(m.b.value[0]) == 1.0
    assert call(m, 1.0) == 2.0
    assert rec.seen[1] is rec.returned[0]  # kept and handed on: no Variable read again
    assert extend.flatten(m).current_values() is rec.returned[1]
    assert float(m.a.value[0]) == 2.0


def test_a_write_elsewhere_between_calls_is_seen_by_the_next_one():
    m, rec = Pair(), Recorder()
    call, _ = _caller(m, rec)
    call(m, 1.0)
    m.b.value = jnp.full(2, 9.0)
    call(m, 1.0)
    assert _as_list(rec.seen[1]) == [[1.0, 1.0], [9.0, 9.0]]
    assert float(m.b.value[0]) == 10.0
    core.update(m, {"a": jnp.full(2, 5.0)})
    call(m, 0.0)
    assert _as_list(rec.seen[2]) == [[5.0, 5.0], [10.0, 10.0]]


def test_a_ticket_drawn_elsewhere_refuses_the_kept_list_even_if_not_forgotten():
    """A write that raced with the last call (its forget missed the list) is caught."""
    m, rec = Pair(), Recorder()
    call, _ = _caller(m, rec)
    call(m, 1.0)
    _flatgraph._VALUE_SET(m.a, jnp.full(2, 7.0))  # a write whose forget has not run yet...
    _valuecache.draw()  # ...but whose ticket was drawn
    assert extend.flatten(m)._cache is rec.returned[0]
    call(m, 1.0)
    assert rec.seen[1] is not rec.returned[0]
    assert _as_list(rec.seen[1]) == [[7.0, 7.0], [1.0, 1.0]]


def test_none_writes_nothing_and_anything_else_goes_to_other():
    m = Pair()
    rec = Recorder(result=(None, "out"))
    call, _ = _caller(m, rec, extra="mine")
    assert call(m, 1.0) == "out"
    assert float(m.a.value[0]) == 0.0 and rec.other_calls == []
    for new in ((jnp.ones(2), jnp.ones(2)), {"a": 1}):
        rec.result = (new, "out")
        assert call(m, 1.0) == "other"
        extra, fg, got, out, args = rec.other_calls[-1]
        assert (extra, got, out, args) == ("mine", new, "out", (m, 1.0))
        assert fg is extend.flatten(m)
        assert float(m.a.value[0]) == 0.0  # not written


def test_a_list_of_the_wrong_length_is_refused_before_anything_is_written():
    m = Pair()
    call, _ = _caller(m, Recorder(result=([jnp.ones(2)], "out")))
    with pytest.raises(ValueError, match="expected 2 values, got 1"):
        call(m, 1.0)
    assert float(m.a.value[0]) == 0.0 and float(m.b.value[0]) == 0.0
    assert _as_list(extend.flatten(m).current_values()) == [[0.0, 0.0], [0.0, 0.0]]


def test_other_objects_keywords_and_a_structural_change_take_the_slow_path():
    m, rec = Pair(), Recorder()
    call, _ = _caller(m, rec)
    assert call(Pair(), 1.0) == "slow"
    assert call(m, 1.0, 2.0) == "slow"
    assert call(m, k=1.0) == "slow"
    m.c = core.Param(jnp.zeros(1))  # the FlatGraph no longer describes m
    assert call(m, 1.0) == "slow"
    assert rec.seen == [] and len(rec.slow_calls) == 4
    assert rec.slow_calls[2] == ((m,), {"k": 1.0})
    assert float(m.a.value[0]) == 0.0


def test_a_dead_graph_takes_the_slow_path():
    m, rec = Pair(), Recorder()
    call, last = _caller(m, rec)
    last[0] = last[0]._replace(graph=weakref.ref(type("Gone", (), {})()))
    assert call(m, 1.0) == "slow" and rec.seen == []
    last[0] = extend.NO_FAST_CALL
    assert call(m, 1.0) == "slow" and rec.seen == []


def test_a_retry_error_from_invoke_takes_the_slow_path_and_others_propagate():
    m = Pair()

    class Refused(Exception):
        pass

    def refuse(values, k):
        raise Refused("JAX refused an argument")

    rec = Recorder()
    rec.invoke = refuse
    call, _ = _caller(m, rec, retry=(Refused,))
    assert call(m, 1.0) == "slow"
    call, _ = _caller(m, rec, retry=(TypeError,))
    with pytest.raises(Refused, match="JAX refused"):
        call(m, 1.0)
    assert float(m.a.value[0]) == 0.0


def test_a_graph_with_raw_array_slots_is_written_and_keeps_no_list():
    m = Pair()
    m.raw = core.Dict(x=jnp.zeros(1))
    rec = Recorder()
    call, _ = _caller(m, rec)
    call(m, 1.0)
    call(m, 1.0)
    assert float(m.raw["x"][0]) == 2.0 and float(m.a.value[0]) == 2.0
    assert extend.flatten(m)._cache is None
    assert rec.seen[1] is not rec.seen[0]


OPS = st.lists(
    st.tuples(st.sampled_from(["call", "set", "update", "other", "read"]), st.integers(0, 1)),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_the_values_handed_out_always_match_the_variables(ops):
    """Fast calls mixed with eager writes, update() and another graph's writes."""
    m, rec = Pair(), Recorder()
    call, _ = _caller(m, rec)
    variables = [m.a, m.b]
    other = extend.flatten((m, Pair()))  # shares m's Variables
    for step, (op, i) in enumerate(ops):
        new = jnp.full(2, float(step))
        before = _as_list(v.value for v in variables)
        if op == "call":
            call(m, 1.0)
            assert _as_list(rec.seen[-1]) == before
            assert _as_list(v.value for v in variables) == [[x + 1 for x in v] for v in before]
        elif op == "set":
            variables[i].value = new
        elif op == "update":
            core.update(m, {"ab"[i]: new})
        elif op == "other":
            other.set_values([new] * 4)
        assert _as_list(extend.flatten(m).current_values()) == _as_list(v.value for v in variables)


def test_threads_stepping_their_own_models_lose_no_step():
    models = [Pair() for _ in range(2)]
    calls = [_caller(m, Recorder())[0] for m in models]

    def run(k):
        for _ in range(300):
            calls[k](models[k], 1.0)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(run, range(2)))  # re-raises a thread's error here
    for m in models:
        assert _as_list([m.a.value, m.b.value]) == [[300.0, 300.0], [300.0, 300.0]]
