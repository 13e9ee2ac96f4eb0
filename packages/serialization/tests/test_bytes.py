"""The msgpack byte format: golden files, round trips, State handling, keys, chunking."""

from pathlib import Path

import jax
import jax.numpy as jnp
import msgpack
import numpy as np
import pytest
from golden_trees import trees
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie import core
from ramie import serialization as ser
from ramie.serialization import _msgpack

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("name", sorted(trees()))
def test_golden_bytes(name):
    expected = (GOLDEN / f"{name}.msgpack").read_bytes()
    assert ser.to_bytes(trees()[name]) == expected
    restored = ser.msgpack_restore(expected)
    assert ser.to_bytes(restored) == expected


def test_bytes_written_by_hand():
    # {"w": float32 [1, 2]} spelled out: map(1) "w" ext8(len 21, type 1)
    # [fixarray(3) [2] "float32" bin8(8) <little-endian floats>]
    expected = (
        b"\x81\xa1w\xc7\x15\x01\x93\x91\x02\xa7float32\xc4\x08" + np.array([1, 2], "<f4").tobytes()
    )
    assert ser.to_bytes({"w": np.array([1, 2], np.float32)}) == expected


def test_numpy_scalar_is_ext_3_and_complex_ext_2():
    data = ser.to_bytes({"s": np.int16(5), "c": 1 + 2j})
    unpacked = msgpack.unpackb(data)
    assert unpacked["s"].code == 3 and unpacked["c"].code == 2
    assert msgpack.unpackb(unpacked["c"].data) == [1.0, 2.0]
    restored = ser.msgpack_restore(data)
    assert restored["s"] == np.int16(5) and restored["s"].dtype == np.int16
    assert restored["c"] == 1 + 2j


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 70_000), code=st.sampled_from([1, 3]))
def test_ext_header_matches_msgpack(n, code):
    assert (
        _msgpack.ext_header(code, n)
        == msgpack.packb(msgpack.ExtType(code, b"\0" * n))[: -n or None]
    )


DTYPES = sorted(ser._dtypes.DTYPES)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(0, 4), max_size=4).map(tuple),
    seed=st.integers(0, 2**32 - 1),
)
def test_array_round_trip_is_bit_exact(name, shape, seed):
    dtype = ser._dtypes.DTYPES[name]
    raw = np.random.default_rng(seed).integers(0, 256, size=int(np.prod(shape)) * dtype.itemsize)
    arr = raw.astype(np.uint8).view(dtype).reshape(shape)
    data = ser.to_bytes({"x": arr})
    # the payload is (shape, dtype name, C-order bytes), so a plain msgpack reader sees it
    shape_read, name_read, buf = msgpack.unpackb(msgpack.unpackb(data)["x"].data)
    assert (tuple(shape_read), name_read, buf) == (shape, name, arr.tobytes())
    out = ser.msgpack_restore(data)["x"]
    assert out.dtype == dtype and out.shape == shape
    assert out.tobytes() == arr.tobytes()


def test_bfloat16_and_float8_round_trip_through_jax():
    tree = {
        "bf16": jnp.linspace(-2, 2, 5, dtype=jnp.bfloat16),
        "f8": jnp.array([0.5, -1.0, 448.0], dtype=jnp.float8_e4m3fn),
        "f8b": jnp.array([1.0, 2.0], dtype=jnp.float8_e5m2),
    }
    restored = ser.from_bytes(tree, ser.to_bytes(tree))
    for k, v in tree.items():
        assert restored[k].dtype == v.dtype
        np.testing.assert_array_equal(
            np.asarray(restored[k], np.float32), np.asarray(v, np.float32)
        )


def test_non_contiguous_and_big_endian_arrays_are_written_in_c_order_native():
    base = np.arange(12, dtype=">i4").reshape(3, 4)
    view = base[:, ::2]
    out = ser.msgpack_restore(ser.to_bytes({"v": view}))["v"]
    assert out.dtype == np.dtype("int32") and out.tolist() == view.tolist()


class Block(core.Module):
    def __init__(self, value):
        self.kernel = core.Param(jnp.full((2, 2), value))
        self.bias = core.Param(jnp.zeros(2))


class Net(core.Module):
    def __init__(self):
        self.zeta = Block(1.0)  # attribute order differs from sorted order
        self.alpha = [Block(2.0), Block(3.0)]
        self.count = core.BatchStat(jnp.array(4, jnp.int32))


def test_state_serializes_as_its_sorted_pure_dict():
    state = core.state(Net())
    pure = core.to_pure_dict(state)
    expected = {
        "alpha": {
            "0": {"bias": pure["alpha"][0]["bias"], "kernel": pure["alpha"][0]["kernel"]},
            "1": {"bias": pure["alpha"][1]["bias"], "kernel": pure["alpha"][1]["kernel"]},
        },
        "count": pure["count"],
        "zeta": {"bias": pure["zeta"]["bias"], "kernel": pure["zeta"]["kernel"]},
    }
    assert ser.to_bytes(state) == ser.to_bytes(expected)
    assert list(ser.to_state_dict(state)) == ["alpha", "count", "zeta"]
    # no extra "value" level
    assert ser.msgpack_restore(ser.to_bytes(state))["zeta"]["kernel"].tolist() == [[1.0] * 2] * 2


def test_state_restores_into_the_same_variable_kinds():
    state = core.state(Net())
    other = core.state(Net())
    other["zeta"]["kernel"].value = jnp.full((2, 2), 9.0)
    restored = ser.from_bytes(state, ser.to_bytes(other))
    assert isinstance(restored, core.State)
    assert type(restored["count"]) is core.BatchStat
    assert restored["zeta"]["kernel"].value.tolist() == [[9.0, 9.0], [9.0, 9.0]]
    assert isinstance(restored["zeta"]["kernel"].value, jax.Array)
    # the target is untouched
    assert state["zeta"]["kernel"].value.tolist() == [[1.0, 1.0], [1.0, 1.0]]
    model = Net()
    core.update(model, restored)
    assert model.zeta.kernel.value.tolist() == [[9.0, 9.0], [9.0, 9.0]]


def test_restore_into_abstract_target_from_eval_shape():
    data = ser.to_bytes(core.state(Net()))
    abstract = jax.eval_shape(lambda: core.state(Net()))
    assert isinstance(abstract["zeta"]["kernel"].value, jax.ShapeDtypeStruct)
    restored = ser.from_bytes(abstract, data)
    assert restored["alpha"][1]["kernel"].value.tolist() == [[3.0, 3.0], [3.0, 3.0]]
    assert restored["count"].value.dtype == jnp.int32


def test_rng_keys_are_stored_as_key_data_and_restored_as_keys():
    class WithRngs(core.Module):
        def __init__(self, seed):
            self.rngs = core.Rngs(seed, dropout=seed + 1)

    model = WithRngs(3)
    model.rngs.dropout()  # advance a counter
    state = core.state(model)
    data = ser.to_bytes(state)
    raw = ser.msgpack_restore(data)["rngs"]["default"]["key"]
    assert raw.dtype == np.uint32 and raw.shape == (2,)
    np.testing.assert_array_equal(raw, jax.random.key_data(state["rngs"]["default"]["key"].value))
    restored = ser.from_bytes(jax.eval_shape(lambda: core.state(WithRngs(0))), data)
    key = restored["rngs"]["dropout"]["key"].value
    assert jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    assert (
        jax.random.key_data(key).tolist()
        == jax.random.key_data(model.rngs.dropout.key.value).tolist()
    )
    assert int(restored["rngs"]["dropout"]["count"].value) == 1


def test_lists_tuples_namedtuples_round_trip():
    from collections import namedtuple

    Point = namedtuple("Point", ["x", "y"])
    tree = {"l": [1, 2.0], "t": (np.ones(1), "s"), "p": Point(np.zeros(2), None)}
    sd = ser.to_state_dict(tree)
    assert sd["l"] == {"0": 1, "1": 2.0} and set(sd["p"]) == {"x", "y"}
    out = ser.from_bytes(tree, ser.to_bytes(tree))
    assert out["l"] == [1, 2.0] and isinstance(out["t"], tuple) and out["t"][1] == "s"
    assert isinstance(out["p"], Point) and out["p"].x.tolist() == [0.0, 0.0]


def test_msgpack_serialize_keeps_lists_as_arrays_and_stringifies_int_keys():
    data = ser.msgpack_serialize({"a": [1, 2], 3: "x"})
    assert msgpack.unpackb(data) == {"a": [1, 2], "3": "x"}


def test_arrays_above_the_chunk_size_are_chunked(monkeypatch):
    monkeypatch.setattr(_msgpack, "MAX_CHUNK_SIZE", 40)
    arr = np.arange(30, dtype=np.float32).reshape(5, 6)  # 120 bytes -> chunks of 10 floats
    data = ser.to_bytes({"big": arr, "small": np.ones(2, np.float32)})
    raw = msgpack.unpackb(data, ext_hook=lambda c, d: (c, d))
    assert raw["big"]["__msgpack_chunked_array__"] is True
    assert raw["big"]["shape"] == {"0": 5, "1": 6}
    assert sorted(raw["big"]["chunks"]) == ["0", "1", "2"]
    out = ser.msgpack_restore(data)
    np.testing.assert_array_equal(out["big"], arr)
    np.testing.assert_array_equal(out["small"], np.ones(2))


def test_custom_type_registration():
    class Box:
        def __init__(self, inner, label):
            self.inner, self.label = inner, label

    ser.register_serialization_state(
        Box,
        lambda b: {"inner": b.inner, "label": b.label},
        lambda t, d: Box(ser.from_state_dict(t.inner, d["inner"]), d["label"]),
    )
    with pytest.raises(ValueError, match="already registered"):
        ser.register_serialization_state(Box, lambda b: {}, lambda t, d: t)
    data = ser.to_bytes({"b": Box(np.arange(3), "hello")})
    out = ser.from_bytes({"b": Box(np.zeros(3, np.int64), "")}, data)
    assert isinstance(out["b"], Box) and out["b"].label == "hello"
    assert out["b"].inner.tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (
            {"m": Block(1.0)},
            ser._errors.MODULE_NOT_SERIALIZABLE.split(":")[0].format(path="m", type_name="Block"),
        ),
        (
            {"a": {"s": jax.ShapeDtypeStruct((2,), jnp.float32)}},
            "'a/s': it is an abstract ShapeDtypeStruct",
        ),
        (
            {"o": np.array(["x"], dtype=object)},
            "Cannot serialize the array at 'o': its dtype object",
        ),
        ({"u": np.array(["x"])}, "Cannot serialize the array at 'u'"),
        ({"f": lambda: 0}, "Cannot serialize the value at 'f': a function"),
        ({"big": 2**70}, "int beyond 64 bits"),
        ({1: 1, "1": 2}, "become the same string key"),
        ({(1, 2): 1}, "key (1, 2) is a tuple"),
    ],
)
def test_unsupported_values_name_their_path(tree, message):
    with pytest.raises(ser.UnsupportedTypeError) as info:
        ser.to_bytes(tree)
    assert message in str(info.value)


def test_cyclic_dict_is_refused_not_a_recursion_error():
    d: dict = {}
    d["self"] = d
    with pytest.raises(ser.UnsupportedTypeError, match="nested more than"):
        ser.to_bytes(d)
