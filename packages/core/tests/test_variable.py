"""Variable: value access, operators, indexing, array protocols, metadata, kinds, pytrees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core
from ramie.core import _errors, extend


class Count(core.Variable):
    pass


class Counter(core.Module):
    def __init__(self):
        self.count = Count(jnp.array(0))

    def __call__(self):
        self.count += 1
        return self.count.value


# -- value ---------------------------------------------------------------------
def test_value_get_and_set():
    v = core.Param(jnp.zeros(3))
    assert isinstance(v.value, jax.Array)
    np.testing.assert_array_equal(v.value, np.zeros(3))
    v.value = jnp.ones(3)
    np.testing.assert_array_equal(v.value, np.ones(3))


def test_value_accepts_numbers_none_and_nested_containers():
    for value in [1, 2.5, None, np.ones(2), (jnp.ones(1), [np.zeros(2)]), {"a": jnp.ones(1)}]:
        v = core.Variable(value)
        assert v.value is value


# -- operators -----------------------------------------------------------------
def test_arithmetic_and_reflected_operators_against_arrays():
    w = core.Param(jnp.arange(6.0).reshape(2, 3))
    b = core.Param(jnp.ones(3))
    x = jnp.ones((4, 2))
    out = x @ w + b
    assert isinstance(out, jax.Array)
    np.testing.assert_allclose(out, np.ones((4, 2)) @ np.arange(6.0).reshape(2, 3) + 1)
    np.testing.assert_allclose(w @ jnp.ones(3), np.arange(6.0).reshape(2, 3).sum(1))
    np.testing.assert_allclose(b + 1, 2 * np.ones(3))
    np.testing.assert_allclose(1 + b, 2 * np.ones(3))
    np.testing.assert_allclose(2 - b, np.ones(3))
    np.testing.assert_allclose(b - 2, -np.ones(3))
    np.testing.assert_allclose(3 * b, 3 * np.ones(3))
    np.testing.assert_allclose(b / 2, 0.5 * np.ones(3))
    np.testing.assert_allclose(2 / b, 2 * np.ones(3))
    np.testing.assert_allclose(2**b, 2 * np.ones(3))
    np.testing.assert_allclose(b**2, np.ones(3))
    np.testing.assert_allclose(-b, -np.ones(3))
    np.testing.assert_allclose(abs(-b), np.ones(3))
    np.testing.assert_array_equal(b < 2, np.ones(3, bool))
    np.testing.assert_array_equal(b >= 2, np.zeros(3, bool))
    # Variable with Variable
    np.testing.assert_allclose(b + b, 2 * np.ones(3))
    # numpy on the left
    np.testing.assert_allclose(np.ones((4, 2)) @ w, np.ones((4, 2)) @ np.arange(6.0).reshape(2, 3))


def test_in_place_operator_keeps_identity_and_changes_value():
    v = core.Param(jnp.ones(2))
    original = v
    v += 1
    assert v is original
    assert isinstance(v, core.Param)
    np.testing.assert_array_equal(v.value, [2.0, 2.0])
    v *= 3
    assert v is original
    np.testing.assert_array_equal(v.value, [6.0, 6.0])
    v -= core.Param(jnp.ones(2))
    np.testing.assert_array_equal(v.value, [5.0, 5.0])


def test_in_place_increment_of_module_attribute():
    m = Counter()
    count = m.count
    assert int(m()) == 1
    assert int(m()) == 2
    assert m.count is count
    assert type(m.count) is Count
    assert int(m.count.value) == 2


def test_in_place_increment_of_module_attribute_is_not_a_structural_change():
    m = Counter()
    graphdef = core.graphdef(m)
    version = extend.structure_version()
    m()
    assert extend.structure_version() == version
    assert core.graphdef(m) == graphdef


# -- indexing ------------------------------------------------------------------
def test_ellipsis_read_gives_the_array():
    v = core.Param(jnp.arange(3.0))
    out = v[...]
    assert isinstance(out, jax.Array)
    np.testing.assert_array_equal(out, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(v[1:], [1.0, 2.0])


def test_ellipsis_assignment_replaces_the_value():
    v = core.Param(jnp.zeros((2, 3)))
    v[...] = jnp.ones((2, 3))
    np.testing.assert_array_equal(v.value, np.ones((2, 3)))
    v[...] = 5.0  # broadcast
    np.testing.assert_array_equal(v.value, np.full((2, 3), 5.0))
    assert v.shape == (2, 3)


def test_index_assignment_on_jax_array():
    v = core.Param(jnp.zeros((3, 2)))
    original = v
    v[1] = jnp.array([7.0, 8.0])
    assert v is original
    assert isinstance(v.value, jax.Array)
    np.testing.assert_array_equal(v.value, [[0, 0], [7, 8], [0, 0]])


def test_index_assignment_on_numpy_array_does_not_mutate_the_old_array():
    data = np.zeros(3)
    v = core.Variable(data)
    v[0] = 1.0
    np.testing.assert_array_equal(v.value, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(data, [0.0, 0.0, 0.0])


# -- array protocols -------------------------------------------------------------
def test_jax_array_protocol():
    v = core.Param(jnp.arange(4.0))
    out = jnp.asarray(v)
    assert isinstance(out, jax.Array)
    np.testing.assert_array_equal(out, [0.0, 1.0, 2.0, 3.0])
    assert v.__jax_array__() is v.value


def test_numpy_array_protocol():
    v = core.Param(jnp.arange(4.0))
    out = np.asarray(v)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [0.0, 1.0, 2.0, 3.0])
    assert np.asarray(v, dtype=np.int32).dtype == np.int32


def test_shape_dtype_ndim_size_len():
    v = core.Param(jnp.zeros((2, 3), jnp.bfloat16))
    assert v.shape == (2, 3)
    assert v.dtype == jnp.bfloat16
    assert v.ndim == 2
    assert v.size == 6
    assert len(v) == 2


def test_scalar_conversions():
    v = core.Variable(jnp.array(3))
    assert int(v) == 3
    assert float(v) == 3.0
    assert bool(v) is True
    assert [10, 20, 30, 40][v] == 40


# -- metadata --------------------------------------------------------------------
def test_metadata_readable_as_attribute_and_mapping():
    v = core.Variable(jnp.ones(2), sharding=("a",))
    assert v.sharding == ("a",)
    assert v.metadata == {"sharding": ("a",)}
    # metadata is a copy: changing it does not change the Variable
    md = v.metadata
    md["sharding"] = ("b",)
    assert v.sharding == ("a",)


def test_missing_metadata_is_an_attribute_error_listing_the_keys():
    v = core.Param(jnp.ones(2), sharding=("a",))
    with pytest.raises(AttributeError, match="sharding"):
        _ = v.nonexistent
    assert not hasattr(v, "nonexistent")


def test_replace_metadata_gives_new_object_of_same_kind():
    v = core.Param(jnp.ones(2), sharding=("a",), tag=0)
    w = v.replace(sharding=("b",))
    assert w is not v
    assert type(w) is core.Param
    assert w.sharding == ("b",)
    assert w.tag == 0
    assert v.sharding == ("a",)
    assert w.value is v.value


def test_replace_value_gives_new_object_of_same_kind():
    v = Count(jnp.array(0), description="steps")
    w = v.replace(jnp.array(5))
    assert type(w) is Count
    assert int(w.value) == 5
    assert int(v.value) == 0
    assert w.description == "steps"


def test_metadata_by_attribute_assignment():
    v = core.Param(jnp.ones(2), sharding=("a",))
    v.tag = 1
    assert v.tag == 1
    assert v.metadata == {"sharding": ("a",), "tag": 1}
    v.sharding = None
    assert v.sharding is None


def test_metadata_assignment_changes_the_graphdef():
    class M(core.Module):
        def __init__(self):
            self.w = core.Param(jnp.ones(2))

    m = M()
    before = core.graphdef(m)
    m.w.tag = "frozen"
    after = core.graphdef(m)
    assert before != after


@pytest.mark.parametrize("bad", [["a"], {"a": 1}, {1, 2}])
def test_unhashable_metadata_raises(bad):
    expected = _errors.METADATA_UNHASHABLE.format(name="sharding", type_name=type(bad).__name__)
    with pytest.raises(core.StateLeafError) as info:
        core.Variable(jnp.ones(2), sharding=bad)
    assert str(info.value) == expected

    v = core.Variable(jnp.ones(2))
    with pytest.raises(core.StateLeafError) as info:
        v.sharding = bad
    assert str(info.value) == expected
    assert "sharding" not in v.metadata

    with pytest.raises(core.StateLeafError) as info:
        v.replace(sharding=bad)
    assert str(info.value) == expected


# -- kinds -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", [core.Param, core.BatchStat, core.Cache, core.Intermediate])
def test_builtin_kinds_are_variable_subclasses(kind):
    assert issubclass(kind, core.Variable)
    v = kind(jnp.ones(1))
    assert isinstance(v, core.Variable)
    others = {core.Param, core.BatchStat, core.Cache, core.Intermediate} - {kind}
    assert not any(isinstance(v, o) for o in others)


def test_user_subclass_is_its_own_kind():
    c = Count(jnp.array(0))
    assert isinstance(c, core.Variable)
    assert not isinstance(c, core.Param)
    m = Counter()
    m.w = core.Param(jnp.ones(2))
    assert core.state(m, Count).paths() == [("count",)]
    assert core.state(m, core.Param).paths() == [("w",)]
    assert type(jax.tree.map(lambda x: x, c)) is Count


# -- pytrees ---------------------------------------------------------------------
def test_tree_map_keeps_kind_and_metadata():
    v = core.Param(jnp.ones(2), sharding=("a",), tag=1)
    w = jax.tree.map(lambda x: x * 3, v)
    assert type(w) is core.Param
    assert w is not v
    assert w.metadata == {"sharding": ("a",), "tag": 1}
    np.testing.assert_array_equal(w.value, [3.0, 3.0])
    np.testing.assert_array_equal(v.value, [1.0, 1.0])


def test_tree_leaves_is_the_value():
    value = jnp.ones(2)
    v = core.Param(value, sharding=("a",))
    leaves = jax.tree.leaves(v)
    assert len(leaves) == 1
    assert leaves[0] is value


def test_metadata_is_static_tree_structure():
    a = core.Param(jnp.ones(2), tag=1)
    b = core.Param(jnp.ones(2), tag=1)
    c = core.Param(jnp.ones(2), tag=2)
    d = core.BatchStat(jnp.ones(2), tag=1)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert jax.tree.structure(a) != jax.tree.structure(c)
    assert jax.tree.structure(a) != jax.tree.structure(d)


def test_variable_through_jit_as_argument_and_return_value():
    v = Count(jnp.array(1), description="steps")

    @jax.jit
    def step(v):
        assert isinstance(v, Count)
        assert v.description == "steps"
        return v.replace(v.value + 1)

    w = step(v)
    assert type(w) is Count
    assert w.description == "steps"
    assert int(w.value) == 2
    assert int(v.value) == 1

    out = jax.jit(lambda v: v * 2 + 1)(core.Param(jnp.ones(2)))
    np.testing.assert_array_equal(out, [3.0, 3.0])


def test_in_place_update_inside_jit_on_an_argument():
    @jax.jit
    def step(v):
        v += 1
        return v

    w = step(core.Param(jnp.zeros(2), tag=1))
    assert type(w) is core.Param
    assert w.tag == 1
    np.testing.assert_array_equal(w.value, [1.0, 1.0])


# -- invalid values ----------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("a string", id="str"),
        pytest.param({1, 2}, id="set"),
        pytest.param(Counter(), id="module"),
        pytest.param(core.Param(jnp.ones(1)), id="variable"),
        pytest.param([jnp.ones(1), "x"], id="list-with-str"),
    ],
)
@pytest.mark.parametrize("kind", [core.Param, Count])
def test_invalid_values_raise_naming_the_kind(kind, bad):
    with pytest.raises(core.StateLeafError, match=rf"^{kind.__name__} holds a "):
        kind(bad)
    v = kind(jnp.zeros(1))
    with pytest.raises(core.StateLeafError, match=rf"^{kind.__name__} holds a "):
        v.value = bad
    np.testing.assert_array_equal(v.value, [0.0])
    with pytest.raises(core.StateLeafError, match=rf"^{kind.__name__} holds a "):
        v.replace(bad)
    assert isinstance(v.value, jax.Array)


def test_invalid_value_message_names_the_type():
    with pytest.raises(core.StateLeafError) as info:
        core.Param("abc")
    assert str(info.value) == _errors.STATE_LEAF_TYPE.format(
        where="Param", found_type="str", found="'abc'"
    )
    assert isinstance(info.value, TypeError)


# -- tracer leaks --------------------------------------------------------------------
def test_tracer_leaked_out_of_jit_raises_trace_leak_error():
    v = core.Param(jnp.ones(2))

    @jax.jit
    def f(x):
        v.value = x * 2  # v is captured from outside: its new value is a tracer
        return x

    f(jnp.ones(2))
    with pytest.raises(core.TraceLeakError) as info:
        _ = v.value
    assert str(info.value) == _errors.TRACE_LEAK.format(kind="Param")


def test_tracer_leaked_out_of_vmap_raises_trace_leak_error():
    v = Count(jnp.zeros(2))

    def f(x):
        v.value = x * 2
        return x

    jax.vmap(f)(jnp.ones((3, 2)))
    with pytest.raises(core.TraceLeakError) as info:
        _ = v.value
    assert str(info.value) == _errors.TRACE_LEAK.format(kind="Count")


def test_tracer_leaked_out_of_grad_raises_trace_leak_error():
    v = core.Param(jnp.zeros(()))

    def f(x):
        v.value = x * 2
        return x

    jax.grad(f)(1.0)
    with pytest.raises(core.TraceLeakError) as info:
        _ = v.value
    assert str(info.value) == _errors.TRACE_LEAK.format(kind="Param")


def test_tracer_inside_its_own_trace_is_fine():
    v = core.Param(jnp.ones(2))

    @jax.jit
    def f(x):
        w = core.Param(x)
        w.value = w.value * 2
        return w.value + v.value

    np.testing.assert_array_equal(f(jnp.ones(2)), [3.0, 3.0])
    np.testing.assert_array_equal(v.value, [1.0, 1.0])


# -- repr ------------------------------------------------------------------------------
def test_repr_shows_kind_and_shape():
    r = repr(core.Param(jnp.zeros((3, 4))))
    assert r.startswith("Param(")
    assert "float32" in r
    assert "[3, 4]" in r
    assert repr(Count(jnp.zeros((5, 6), jnp.int32))).startswith("Count(int32[5, 6]")


def test_repr_of_small_value_shows_value_and_metadata():
    r = repr(core.BatchStat(jnp.array([1.0, 2.0]), axis=("b",)))
    assert r.startswith("BatchStat(")
    assert "1." in r and "2." in r
    assert "axis=('b',)" in r


def test_copy_is_a_new_variable_of_the_same_kind():
    v = Count(jnp.array(3), tag=1)
    c = v.copy()
    assert c is not v
    assert type(c) is Count
    assert c.metadata == v.metadata
    c.value = jnp.array(4)
    assert int(v.value) == 3
