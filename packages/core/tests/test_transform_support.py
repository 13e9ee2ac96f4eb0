"""Core support for transforms: frames that own objects, structural diffs, flat values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
