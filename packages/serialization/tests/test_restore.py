"""Restoring into a target: mismatches name every path with both sides; strict=False."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core
from ramie import serialization as ser


def target():
    return {
        "a": {"kernel": np.zeros((2, 3), np.float32), "bias": np.zeros(3, np.float32)},
        "b": np.zeros(4, np.int32),
        "n": 1.0,
    }


def test_every_difference_is_named_with_both_sides():
    data = ser.to_bytes(
        {
            "a": {"kernel": np.ones((3, 2), np.float32), "extra": np.ones(1)},  # shape, extra
            "b": np.ones(4, np.float64),  # dtype
            "n": "text",  # kind
            # "a/bias" missing
        }
    )
    with pytest.raises(ser.StateMismatchError) as info:
        ser.from_bytes(target(), data)
    message = str(info.value)
    assert message.startswith("from_bytes(): the data does not fit the target at 5 path(s):")
    assert "  - a/kernel: target has float32[2,3]; data has float32[3,2]" in message
    assert "  - a/bias: target has float32[3]; data has nothing (the key is missing)" in message
    assert "  - a/extra: target has nothing (the key is missing); data has float64[1]" in message
    assert "  - b: target has int32[4]; data has float64[4]" in message
    assert "  - n: target has float 1.0; data has str 'text'" in message
    assert "pass strict=False" in message
    assert sorted(p for p, _, _ in info.value.differences) == [
        "a/bias", "a/extra", "a/kernel", "b", "n",
    ]  # fmt: skip


def test_mapping_where_a_leaf_belongs_and_back():
    with pytest.raises(ser.StateMismatchError) as info:
        ser.from_state_dict({"x": np.zeros(1), "y": {"z": np.zeros(1)}}, {"x": {"q": 1}, "y": 3})
    message = str(info.value)
    assert "x: target has float64[1]; data has a mapping with keys ['q']" in message
    assert "y: target has a mapping with keys ['z']; data has int 3" in message


def test_strict_false_restores_what_matches_and_warns_about_the_rest():
    data = ser.to_bytes({"a": {"kernel": np.ones((2, 3), np.float32)}, "b": np.ones(2), "z": 5})
    with pytest.warns(ser.RestoreMismatchWarning) as record:
        out = ser.from_bytes(target(), data, strict=False)
    assert out["a"]["kernel"].tolist() == [[1.0] * 3] * 2  # restored
    assert out["a"]["bias"].tolist() == [0.0] * 3  # missing: target kept
    assert out["b"].tolist() == [0, 0, 0, 0]  # shape mismatch: target kept
    text = str(record[0].message)
    assert text.startswith("from_bytes(): strict=False restored every matching path; 4 path(s)")
    for path in ("a/bias", "b", "z", "n"):
        assert f"  - {path}:" in text


def test_matching_data_gives_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ser.from_bytes(target(), ser.to_bytes(target()), strict=False)
    assert out["b"].dtype == np.int32


def test_module_target_is_refused_with_advice():
    class M(core.Module):
        def __init__(self):
            self.w = core.Param(jnp.ones(1))

    with pytest.raises(ser.SerializationError, match="restore into its state instead"):
        ser.from_bytes(M(), ser.to_bytes({"w": np.ones(1)}))


def test_shape_dtype_struct_target_gets_jax_arrays_on_its_sharding():
    device = jax.devices()[0]
    sharding = jax.sharding.SingleDeviceSharding(device)
    abstract = {"w": jax.ShapeDtypeStruct((2,), jnp.float32, sharding=sharding)}
    out = ser.from_bytes(abstract, ser.to_bytes({"w": np.array([1, 2], np.float32)}))
    assert isinstance(out["w"], jax.Array) and out["w"].sharding == sharding
    assert out["w"].tolist() == [1.0, 2.0]


def test_key_target_checks_the_key_data_shape():
    abstract = {"k": jax.eval_shape(lambda: jax.random.split(jax.random.key(0), 3))}
    with pytest.raises(
        ser.StateMismatchError, match=r"k: target has key<fry>\[3\]; data has uint32\[2,2\]"
    ):
        ser.from_bytes(abstract, ser.to_bytes({"k": np.zeros((2, 2), np.uint32)}))
    keys = jax.random.split(jax.random.key(5), 3)
    out = ser.from_bytes(abstract, ser.to_bytes({"k": keys}))
    assert (jax.random.key_data(out["k"]) == jax.random.key_data(keys)).all()
