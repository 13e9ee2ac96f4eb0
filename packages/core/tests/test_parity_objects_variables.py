"""Variables as Flax NNX programs use them (issue 14): comparisons, item assignment, accessors."""

import dataclasses
import typing

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie import core
from ramie.core import _errors


# -- comparisons use the value ---------------------------------------------------
def test_equality_compares_the_value_like_the_other_operators():
    # issue 14: `nn.Param(jnp.array(1)) == 1` was False (identity)
    eq = core.Param(jnp.array(1)) == 1
    assert isinstance(eq, jax.Array) and eq.dtype == jnp.bool_ and bool(eq)
    assert not bool(core.Param(jnp.array(1)) != 1)
    assert bool(core.Param(jnp.array(2)) != 1)
    assert (core.Param(jnp.arange(3)) == jnp.array([0, 5, 2])).tolist() == [True, False, True]
    assert bool(1 == core.Param(jnp.array(1)))  # reflected
    assert bool(core.Param(jnp.array(3)) == core.Cache(jnp.array(3)))  # both unwrapped


def test_cache_index_branch_takes_the_value_branch():
    class Decoder(core.Module):
        def __init__(self):
            self.cache_index = core.Cache(jnp.array(0, dtype=jnp.int32))

        def step(self):
            first = "first" if self.cache_index == 0 else "later"
            self.cache_index += 1
            return first

    d = Decoder()
    assert [d.step(), d.step()] == ["first", "later"]


def test_variables_hash_by_identity_and_key_dicts_and_sets():
    a, b = core.Param(jnp.array(1)), core.Param(jnp.array(1))
    assert hash(a) == object.__hash__(a) and hash(a) != hash(b)
    table = {a: "a", b: "b"}
    assert table[a] == "a" and table[b] == "b"
    assert len({a, b, a}) == 2
    assert core.Param.__hash__ is object.__hash__


# -- item assignment keeps the Variable an array of its dtype -------------------
def test_assigning_a_python_int_through_ellipsis_keeps_an_array():
    v = core.Variable(jnp.array(0))
    v[...] = 5  # issue 14: stored a Python int; the next v[...] raised
    assert isinstance(v.value, jax.Array) and v.value.dtype == jnp.int32
    assert int(v[...]) == 5


def test_assigning_an_int_array_to_a_float32_variable_keeps_float32():
    v = core.Param(jnp.zeros(3, jnp.float32))
    v[...] = jnp.arange(3)  # issue 14: the dtype silently became int32
    assert v.value.dtype == jnp.float32 and v.value.tolist() == [0.0, 1.0, 2.0]
    v[...] = 5
    assert v.value.dtype == jnp.float32 and v.value.tolist() == [5.0, 5.0, 5.0]
    v[1] = 7
    assert v.value.tolist() == [5.0, 7.0, 5.0] and v.value.dtype == jnp.float32


def test_a_narrowing_item_assignment_is_refused_naming_the_variable():
    v = core.BatchStat(jnp.zeros(3, jnp.int32))
    with pytest.raises(core.StateLeafError) as info:
        v[...] = jnp.array([1.5, 2.5, 3.5])
    assert str(info.value) == _errors.UNSAFE_ITEM_CAST.format(
        kind="BatchStat", dtype="int32", found="float32"
    )
    with pytest.raises(core.StateLeafError) as info:
        v[0] = 1.5
    assert "a Python float" in str(info.value) and "BatchStat holding int32" in str(info.value)
    assert v.value.tolist() == [0, 0, 0]


def test_item_assignment_broadcasts_but_never_changes_the_shape():
    v = core.Param(jnp.zeros((2, 3)))
    v[...] = jnp.array([1.0, 2.0, 3.0])
    assert v.value.tolist() == [[1.0, 2.0, 3.0]] * 2
    with pytest.raises(ValueError):
        v[...] = jnp.ones(4)
    assert v.value.shape == (2, 3)


def test_item_assignment_of_the_same_shape_and_dtype_stores_the_array_itself():
    v = core.Param(jnp.zeros(3))
    new = jnp.ones(3)
    v[...] = new
    assert v.value is new


def test_item_assignment_inside_jit_keeps_the_dtype():
    v = core.Cache(jnp.zeros(4, jnp.float32))

    @jax.jit
    def f(x):
        c = core.Cache(jnp.zeros(4, jnp.float32))
        c[...] = x
        return c.value

    assert f(jnp.arange(4)).dtype == jnp.float32
    assert v.value.dtype == jnp.float32


def test_value_assignment_still_replaces_dtype_and_shape():
    v = core.Param(jnp.zeros(3, jnp.float32))
    v.value = jnp.arange(5)
    assert v.value.dtype == jnp.int32 and v.value.shape == (5,)


@settings(max_examples=40, deadline=None)
@given(
    dst=st.sampled_from(["bool", "int32", "float32", "complex64"]),
    src=st.sampled_from(["bool", "int32", "float32", "complex64"]),
    shape=st.sampled_from([(), (3,), (2, 3)]),
)
def test_item_assignment_keeps_dtype_or_refuses_a_narrowing_cast(dst, src, shape):
    order = ["bool", "int32", "float32", "complex64"]
    v = core.Variable(jnp.zeros(shape, dst))
    item = jnp.ones(shape, src)
    if order.index(src) > order.index(dst):
        with pytest.raises(core.StateLeafError):
            v[...] = item
        assert v.value.dtype == jnp.dtype(dst) and not v.value.any()
    else:
        v[...] = item
        assert v.value.dtype == jnp.dtype(dst) and v.value.shape == shape
        assert bool(v.value.all())


# -- NNX accessor spellings -----------------------------------------------------
def test_get_value_set_value_and_get_raw_value():
    v = core.Param(jnp.arange(3.0))
    assert v.get_value() is v.value and v.get_raw_value() is v.value
    assert float(v.get_value(index=2)) == 2.0
    v.set_value(jnp.ones(2, jnp.int32))  # like v.value = ...: dtype and shape follow
    assert v.value.tolist() == [1, 1] and v.value.dtype == jnp.int32
    v.set_value(9, index=0)  # like v[0] = 9
    assert v.value.tolist() == [9, 1]


def test_get_metadata_and_set_metadata_follow_nnx_signatures():
    v = core.Param(jnp.zeros(2), tag="enc")
    assert v.get_metadata() == {"tag": "enc"}
    v.get_metadata()["tag"] = "changed"  # a copy
    assert v.get_metadata("tag") == "enc" and v.tag == "enc"
    assert v.get_metadata("other", default=None) is None
    with pytest.raises(KeyError) as info:
        v.get_metadata("other")
    assert info.value.args[0] == _errors.NO_METADATA.format(
        kind="Param", name="other", keys=["tag"]
    )
    v.set_metadata("tag", "dec")
    v.set_metadata(frozen=True)
    assert v.get_metadata() == {"tag": "dec", "frozen": True}
    assert v.has_metadata("frozen") and not v.has_metadata("nope")
    v.del_metadata("frozen")
    assert v.get_metadata() == {"tag": "dec"}
    v.set_metadata({"only": 1})  # one mapping replaces everything
    assert v.get_metadata() == {"only": 1}
    with pytest.raises(TypeError) as info:
        v.set_metadata("a", 1, 2)
    assert str(info.value) == _errors.SET_METADATA_ARGS.format(kind="Param")
    with pytest.raises(core.StateLeafError):
        v.set_metadata(bad=[1, 2])  # metadata is hashable, as with plain assignment


def test_set_metadata_changes_the_structure():
    class M(core.Module):
        def __init__(self):
            self.w = core.Param(jnp.zeros(2))

    m = M()
    before = core.graphdef(m)
    m.w.set_metadata(tag="x")
    assert core.graphdef(m) != before
    assert core.split(m)[1]["w"].tag == "x"


def test_transpose_property():
    v = core.Param(jnp.arange(6.0).reshape(2, 3))
    assert v.T.shape == (3, 2) and v.T.tolist() == np.arange(6.0).reshape(2, 3).T.tolist()


# -- generic annotations ----------------------------------------------------------
def test_variable_kinds_subscript_in_annotations_and_dataclass_fields():
    assert core.Param[jax.Array] is core.Param
    assert core.Variable[int] is core.Variable

    def f(p: core.Param[jax.Array]) -> core.BatchStat[jax.Array]:
        return p

    assert typing.get_type_hints(f)["p"] is core.Param

    @dataclasses.dataclass
    class Holder:
        w: core.Param[jax.Array]
        n: core.Cache[jax.Array] = dataclasses.field(default=None)

    h = Holder(core.Param(jnp.ones(2)))
    assert [f.type for f in dataclasses.fields(Holder)] == [core.Param, core.Cache]
    assert float(h.w.value.sum()) == 2.0
