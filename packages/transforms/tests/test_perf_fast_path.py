"""The per-call fast path of ``jit`` for several objects, donated or not (issue 16).

A repeated call with the same objects skips the signature and structure lookups;
these tests check it gives the results of the full path whenever the arguments
change: other objects (including new ones at a dead object's address), swapped
positions, an object where an array was, a structural change, mixed donation.
"""

from __future__ import annotations

import gc

import jax.numpy as jnp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie import core
from ramie.transforms import jit


class Acc(core.Module):
    def __init__(self, start: float):
        self.total = core.Variable(jnp.array(start))
        self.rngs = core.Rngs(0)


def _step(donate):
    @jit(donate_argnums=donate)
    def step(a, b, x):
        a.total.value = a.total.value + x
        b.total.value = b.total.value * 2
        return a.total.value + b.total.value

    return step


DONATIONS = [None, (0, 1), 0, (0, 1, 2)]


@pytest.mark.parametrize("donate", DONATIONS)
def test_repeated_calls_with_two_objects_update_both(donate):
    step = _step(donate)
    a, b = Acc(0.0), Acc(1.0)
    outs = [float(step(a, b, jnp.array(1.0))) for _ in range(4)]
    assert outs == [3.0, 6.0, 11.0, 20.0]
    assert float(a.total.value) == 4.0 and float(b.total.value) == 16.0


@pytest.mark.parametrize("donate", DONATIONS)
def test_swapped_objects_and_new_objects_take_the_right_values(donate):
    step = _step(donate)
    a, b = Acc(0.0), Acc(1.0)
    step(a, b, jnp.array(1.0))
    assert float(step(b, a, jnp.array(1.0))) == 5.0  # b: 2 + 1, a: 1 * 2
    assert (float(a.total.value), float(b.total.value)) == (2.0, 3.0)
    del a
    gc.collect()
    c = Acc(10.0)  # may reuse the dead object's address
    assert float(step(c, b, jnp.array(1.0))) == 17.0
    assert (float(c.total.value), float(b.total.value)) == (11.0, 6.0)


def test_an_object_where_an_array_was_takes_the_full_path():
    @jit(donate_argnums=0)
    def add(a, x):
        a.total.value = a.total.value + (x.total.value if isinstance(x, Acc) else x)
        return a.total.value

    a, c = Acc(0.0), Acc(5.0)
    assert float(add(a, jnp.array(1.0))) == 1.0
    assert float(add(a, c)) == 6.0  # c's value read, c itself untouched and not donated
    assert float(add(a, jnp.array(1.0))) == 7.0
    assert float(c.total.value) == 5.0


def test_a_structural_change_between_calls_is_seen():
    step = _step((0, 1))
    a, b = Acc(0.0), Acc(1.0)
    step(a, b, jnp.array(1.0))
    a.extra = core.Variable(jnp.array(7.0))
    assert float(step(a, b, jnp.array(1.0))) == 6.0
    assert float(a.extra.value) == 7.0 and float(a.total.value) == 2.0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=8))
def test_any_sequence_of_calls_matches_python(pairs):
    step = _step((0, 1))
    objs = [Acc(float(i)) for i in range(3)]
    expect = [float(i) for i in range(3)]
    for i, j in pairs:
        if i == j:
            continue  # the same object donated twice is the same leaf: skip
        out = step(objs[i], objs[j], jnp.array(1.0))
        expect[i] += 1
        expect[j] *= 2
        assert float(out) == expect[i] + expect[j]
    assert [float(o.total.value) for o in objs] == expect


# -- partial write-back: only the changed leaves come back (``Written``) ------------
class Pair(core.Module):
    def __init__(self):
        self.a = core.Variable(jnp.zeros(()))
        self.b = core.Variable(jnp.zeros(()))
        self.c = core.Variable(jnp.zeros(()))


def test_only_changed_variables_are_written_back_and_others_keep_their_array():
    @jit
    def bump_a(m, x):
        m.a.value = m.a.value + x
        return m.b.value

    m = Pair()
    b_array, c_array = m.b.value, m.c.value
    for k in range(1, 4):
        bump_a(m, jnp.array(1.0))
        assert float(m.a.value) == float(k)
    assert m.b.value is b_array and m.c.value is c_array  # untouched: no write, no copy


def test_changed_set_that_depends_on_the_trace_is_written_right():
    # One layout (same objects, same argument types), two traces (two input shapes)
    # that change different Variables: each call writes what its own trace changed.
    @jit
    def step(m, x):
        if x.shape[0] == 1:
            m.a.value = m.a.value + x.sum()
        else:
            m.b.value = m.b.value + x.sum()
            m.c.value = m.c.value - 1
        return x.sum()

    m = Pair()
    for _ in range(3):
        step(m, jnp.ones(1))
        step(m, jnp.ones(2))
    assert (float(m.a.value), float(m.b.value), float(m.c.value)) == (3.0, 6.0, -3.0)


@pytest.mark.parametrize("donate", DONATIONS)
def test_user_writes_between_calls_are_seen_by_the_next_call(donate):
    step = _step(donate)
    a, b = Acc(0.0), Acc(1.0)
    step(a, b, jnp.array(1.0))
    a.total.value = jnp.array(100.0)  # outside the jit, between two fast-path calls
    b.total[...] = 3.0
    assert float(step(a, b, jnp.array(1.0))) == 107.0
    assert (float(a.total.value), float(b.total.value)) == (101.0, 6.0)


def test_donating_every_leaf_of_the_objects_repeatedly_and_ahead_of_time():
    # No PRNG key: every leaf of the object is donated (values go in as one list).
    @jit(donate_argnums=0)
    def step(m, x):
        m.a.value = m.a.value + x
        m.b.value = m.b.value * 2 + 1
        return m.a.value

    m = Pair()
    for k in range(1, 4):
        old = m.a.value
        assert float(step(m, jnp.array(1.0))) == float(k)
        assert old.is_deleted()
    assert (float(m.a.value), float(m.b.value), float(m.c.value)) == (3.0, 7.0, 0.0)
    compiled = step.lower(m, jnp.array(1.0)).compile()
    assert float(compiled(m, jnp.array(1.0))) == 4.0
    assert float(m.b.value) == 15.0


def test_donating_object_leaves_deletes_the_old_buffers_and_keeps_keys():
    @jit(donate_argnums=0)
    def step(m, x):
        m.total.value = m.total.value + x
        return m.rngs.params()  # the key is read, never donated

    m = Acc(0.0)
    key_before = m.rngs.params.key.value
    old = m.total.value
    step(m, jnp.array(2.0))
    assert old.is_deleted() and float(m.total.value) == 2.0
    assert not key_before.is_deleted() and m.rngs.params.key.value is key_before


# -- the kept list of leaf values (core's _valuecache) under jit -------------------
class Two(core.Module):
    def __init__(self):
        self.a = core.Variable(jnp.zeros(()))
        self.b = core.Variable(jnp.zeros(()))


class Both(core.Module):
    def __init__(self):
        self.left = Two()
        self.right = Two()


def _all_body(m):  # writes every leaf: the fast path keeps the list JAX returned
    for t in (m.left, m.right):
        t.a.value = t.a.value * 2 + 1
        t.b.value = t.b.value + t.a.value


_all_step = jit(_all_body)
_all_step_donated = jit(_all_body, donate_argnums=0)


@jit
def _one_step(m):  # writes one leaf of four: the kept list is patched
    m.right.b.value = m.right.b.value - 3


@jit
def _sub_step(t):  # another graph over half of the same Variables
    t.a.value = t.a.value + 10


@jit
def _read(m):
    return [m.left.a.value, m.left.b.value, m.right.a.value, m.right.b.value]


def _reference(op, ref, k):
    if op in ("all", "all_donated"):
        for i in (0, 2):
            ref[i] = ref[i] * 2 + 1
            ref[i + 1] = ref[i + 1] + ref[i]
    elif op == "one":
        ref[3] -= 3
    elif op == "sub":
        ref[0] += 10
    elif op == "set":
        ref[k] = 100.0 + k
    elif op == "update":
        ref[2] = -1.0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["all", "all_donated", "one", "sub", "set", "update", "read"]),
            st.integers(0, 3),
        ),
        max_size=20,
    )
)
def test_jitted_steps_never_see_a_stale_kept_list(ops):
    """Steps that write all or some leaves, another graph's step, eager writes, update."""
    m = Both()
    variables = [m.left.a, m.left.b, m.right.a, m.right.b]
    ref = [0.0, 0.0, 0.0, 0.0]
    for op, k in ops:
        if op == "all":
            _all_step(m)
        elif op == "all_donated":
            _all_step_donated(m)
        elif op == "one":
            _one_step(m)
        elif op == "sub":
            _sub_step(m.left)
        elif op == "set":
            variables[k].value = jnp.array(100.0 + k)
        elif op == "update":
            core.update(m, {"right": {"a": jnp.array(-1.0)}})
        _reference(op, ref, k)
        assert [float(v) for v in _read(m)] == ref
        assert [float(v.value) for v in variables] == ref


def test_a_write_from_another_thread_during_training_is_not_lost():
    """A trainer thread writes one leaf each step; another thread sets a leaf it only reads."""
    import threading

    m = Both()

    @jit
    def step(m):
        m.left.a.value = m.left.a.value + m.right.b.value * 0 + 1

    writes = 300

    def trainer():
        for _ in range(writes):
            step(m)

    def writer():
        for k in range(writes):
            m.right.b.value = jnp.array(float(k))

    threads = [threading.Thread(target=trainer), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert float(m.left.a.value) == writes
    assert [float(v) for v in _read(m)][2:] == [0.0, writes - 1.0]
