"""Core support for transforms: frames that own objects, structural diffs, flat values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie import core
from ramie.core import extend


class Block(core.Module):
    def __init__(self):
        self.w = core.Param(jnp.ones(3))
        self.mean = core.BatchStat(jnp.zeros(3))
        self.deterministic = False


class Net(core.Module):
    def __init__(self):
        self.a = Block()
        self.b = Block()
        self.raw = jnp.arange(2.0)


def test_frame_owns_variables_created_inside_and_allows_their_mutation():
    outside = core.Param(jnp.zeros(2))
    messages = []

    def f(x):
        with extend.transform_frame("jit") as frame:
            inside = core.Param(jnp.zeros(2))
            assert id(inside) in frame.owned and id(outside) not in frame.owned
            inside.value = x  # owned: fine
            with pytest.raises(core.CapturedMutationError) as info:
                outside.value = x
            messages.append(str(info.value))
            return inside.value

    value = jax.jit(f)(jnp.ones(2))
    (message,) = messages
    np.testing.assert_array_equal(value, np.ones(2))
    assert message == core._errors.CAPTURED_MUTATION.format(
        kind="Param", found="holding float32[2]", transform="jit"
    )
    assert "Pass the object that holds it" in message
    np.testing.assert_array_equal(outside.value, np.zeros(2))
    assert core._frames.FRAMES == []


def test_frame_allows_concrete_values_and_owned_copies():
    outside = core.Param(jnp.zeros(2))

    def f(x):
        with extend.transform_frame("vmap") as frame:
            outside.value = np.zeros(2)  # a concrete value is not a leak
            copy = outside.copy()
            frame.own([])  # no-op
            copy.value = x  # copies made inside are owned
            return copy.value

    jax.jit(f)(jnp.ones(2))


def test_frame_owns_the_variables_of_states_made_inside():
    net = Net()

    def f(x):
        with extend.transform_frame("jit"):
            params, stats = core.state(net, core.Param, core.BatchStat)
            _, everything = core.split(net)
            params.a.w.value = x  # copies made by state()/split() inside are owned
            everything.b.mean.value = x
            with pytest.raises(core.CapturedMutationError):
                net.a.w.value = x  # the captured original is not
            return params.a.w.value + everything.b.mean.value

    np.testing.assert_array_equal(jax.jit(f)(jnp.ones(3)), 2 * np.ones(3))
    np.testing.assert_array_equal(net.a.w.value, np.ones(3))


def test_frame_is_popped_when_the_block_raises():
    with pytest.raises(ZeroDivisionError):
        with extend.transform_frame("scan"):
            raise ZeroDivisionError
    assert core._frames.FRAMES == []


def test_graph_changes_names_paths_and_what_changed():
    net = Net()
    before = core.graphdef(net)
    net.a.deterministic = True
    net.b = Block()  # same structure: no change
    del net.a.mean
    net.a.extra = core.Intermediate(jnp.ones(1))
    net.c = Block()
    found = core.graph_changes(before, core.graphdef(net))
    assert [str(c) for c in found] == [
        "'a/mean': removed (a BatchStat Variable)",
        "'a/deterministic': changed from False to True",
        "'a/extra': added (an Intermediate Variable)",
        "'c': added (a Block module)",
    ]
    assert [c.adds_variables for c in found] == [False, False, True, False]


def test_graph_changes_lists_and_kinds():
    net = Net()
    net.layers = [core.Param(jnp.ones(1))]
    before = core.graphdef(net)
    net.layers.append(core.Param(jnp.ones(1)))
    net.raw = core.Param(jnp.arange(2.0))
    found = [str(c) for c in core.graph_changes(before, core.graphdef(net))]
    assert found == [
        "'raw': changed from an array to a Param Variable",
        "'layers/1': added (a Param Variable)",
    ]
    assert core.graph_changes(before, before) == []


def test_set_values_writes_variables_and_raw_arrays_in_place():
    net = Net()
    fg = core.flatten(net)
    values = [v + 1 for v in fg.values()]
    fg.set_values(values)
    np.testing.assert_array_equal(net.a.w.value, 2 * np.ones(3))
    np.testing.assert_array_equal(net.raw, np.arange(2.0) + 1)
    with pytest.raises(ValueError, match="expected 5 values, got 1"):
        fg.set_values(values[:1])


def test_set_values_fast_path_for_variables_only():
    block = Block()
    fg = core.flatten(block)
    fg.set_values([jnp.full(3, 7.0), jnp.full(3, 8.0)])
    assert float(block.w.value[0]) == 7.0 and float(block.mean.value[0]) == 8.0


# -- FlatGraph.write_at: set_values at recurring positions (issue 16) ----------------
def test_write_at_writes_only_the_given_positions():
    net = Net()  # 4 Variables and a raw array: the general (slot) writer
    fg = core.flatten(net)
    before = fg.values()
    positions = (1, 4)
    fg.write_at(positions, [jnp.full(3, 5.0), jnp.full(2, 9.0)])
    after = fg.values()
    np.testing.assert_array_equal(after[1], np.full(3, 5.0))
    np.testing.assert_array_equal(net.raw, np.full(2, 9.0))
    assert all(after[i] is before[i] for i in (0, 2, 3))


def test_write_at_remembers_a_positions_tuple_by_identity_and_is_bounded():
    from ramie.core._flatgraph import MAX_WRITERS

    block = Block()  # Variables only: the fast writer
    fg = core.flatten(block)
    positions = (1,)
    for k in range(3):
        fg.write_at(positions, [jnp.full(3, float(k))])
        assert float(block.mean.value[0]) == float(k)
    assert len(fg._writers) == 1
    # An equal but distinct tuple is another entry; the table never exceeds its bound.
    for k in range(MAX_WRITERS + 5):
        fg.write_at(tuple([0]), [jnp.full(3, float(k))])
        assert float(block.w.value[0]) == float(k)
        assert len(fg._writers) <= MAX_WRITERS


def test_write_at_with_mismatched_lengths_raises_like_set_values():
    block = Block()
    fg = core.flatten(block)
    with pytest.raises(ValueError, match="2 positions but 1 values"):
        fg.write_at((0, 1), [jnp.zeros(3)])
    np.testing.assert_array_equal(block.w.value, np.ones(3))  # nothing written


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), unique=True, max_size=5), st.booleans())
def test_write_at_matches_set_values_at_positions(positions, with_raw):
    def build():
        return Net() if with_raw else Block()

    a, b = build(), build()
    fa, fb = core.flatten(a), core.flatten(b)
    positions = tuple(p for p in positions if p < len(fa.refs))
    values = [jnp.full(jnp.shape(fa.values()[p]), float(p + 10)) for p in positions]
    fa.write_at(positions, values)
    fa.write_at(positions, values)  # the remembered writer gives the same result
    fb.set_values(values, positions)
    for x, y in zip(fa.values(), fb.values(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_sharding_keys_are_read_in_the_order_extend_lists_them():
    assert extend.SHARDING_KEYS == ("sharding_names", "sharding", "sharding_metadata")
    for k, key in enumerate(extend.SHARDING_KEYS):
        later = extend.SHARDING_KEYS[k:]
        v = core.Param(jnp.ones((2, 3)), **{name: (name, str(i)) for i, name in enumerate(later)})
        assert core.sharding_names(v) == (key, "0")  # the first key present wins
