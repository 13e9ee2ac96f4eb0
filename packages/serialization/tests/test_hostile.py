"""Malformed and hostile bytes raise MalformedDataError: never a crash, hang or huge allocation."""

import struct
import tracemalloc

import msgpack
import numpy as np
import pytest
from fuzzing import mutated
from golden_trees import trees
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from timeouts import deadline

from ramie import serialization as ser

VALID = [ser.to_bytes(t) for t in trees().values()] + [
    ser.to_bytes({"w": np.arange(40, dtype=np.float32).reshape(5, 8), "s": [np.int8(1), 2j]})
]


def ext(code: int, payload: bytes) -> bytes:
    return msgpack.packb(msgpack.ExtType(code, payload))


def array_payload(shape, name, data) -> bytes:
    return msgpack.packb([shape, name, data], use_bin_type=True)


def _restore_or_refuse(data: bytes) -> None:
    """Restoring either works or raises our error; nothing else may escape."""
    try:
        with deadline(5):
            ser.msgpack_restore(data)
    except ser.MalformedDataError as e:
        assert str(e).startswith("Cannot read the data as ramie/Flax msgpack: ")


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes(data):
    _restore_or_refuse(data)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(VALID))
def test_mutated_valid_bytes(data):
    _restore_or_refuse(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID), st.data())
def test_every_truncation_is_refused(data, draw):
    cut = draw.draw(st.integers(0, len(data) - 1))
    with deadline(5), pytest.raises(ser.MalformedDataError):
        ser.msgpack_restore(data[:cut])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (msgpack.packb({"x": msgpack.ExtType(1, b"\xc1")}), "array payload is not valid msgpack"),
        (
            msgpack.packb({"x": msgpack.ExtType(1, msgpack.packb([[2], "float32"]))}),
            "must be [shape, dtype name, bytes]",
        ),
        (
            msgpack.packb(
                {"x": msgpack.ExtType(1, array_payload([10**6, 10**6], "float32", b"1234"))}
            ),
            "needs 4000000000000 bytes, but 4 are given",
        ),
        (
            msgpack.packb({"x": msgpack.ExtType(1, array_payload([2], "object", b"\0" * 16))}),
            "the dtype 'object' is not one ramie reads",
        ),
        (
            msgpack.packb({"x": msgpack.ExtType(1, array_payload([2], "<U4", b"\0" * 32))}),
            "the dtype '<U4' is not one ramie reads",
        ),
        (
            msgpack.packb(
                {"x": msgpack.ExtType(1, array_payload([2], "numpy.core.multiarray", b""))}
            ),
            "is not one ramie reads",
        ),
        (
            msgpack.packb({"x": msgpack.ExtType(1, array_payload([-1], "int8", b"\0"))}),
            "not a non-negative int",
        ),
        (
            msgpack.packb({"x": msgpack.ExtType(1, array_payload([1] * 40, "int8", b"\0"))}),
            "array payload is not valid msgpack",  # more dims than allowed is refused by the limit
        ),
        (
            msgpack.packb({"x": msgpack.ExtType(1, array_payload([2.5], "int8", b"\0\0"))}),
            "not a non-negative int",
        ),
        (
            msgpack.packb({"x": msgpack.ExtType(3, array_payload([2], "int8", b"\0\0"))}),
            "a numpy scalar (ext 3) has shape (2,)",
        ),
        (msgpack.packb({"x": msgpack.ExtType(2, msgpack.packb([1.0]))}), "must hold [real, imag]"),
        (
            msgpack.packb({"x": msgpack.ExtType(2, msgpack.packb(["a", "b"]))}),
            "must hold [real, imag]",
        ),
        (msgpack.packb({"x": msgpack.ExtType(9, b"")}), "unknown msgpack ext type 9"),
        (b"\x91" * 100_000 + b"\x00", "nested too deeply"),
        (b"\x81" * 50_000 + b"\xc0", "nested too deeply"),
        (b"\xdd\xff\xff\xff\xff", "exceeds max_array_len"),
        (b"\xdf\xff\xff\xff\xff", "exceeds max_map_len"),
        (b"\xc6\xff\xff\xff\xff", "Unpack failed: incomplete input"),
        (b"\xc9\xff\xff\xff\xff\x01", "exceeds max_ext_len"),
        (msgpack.packb({1: 2}), "int is not allowed for map key"),
        (b"\xa2\xff\xfe", "UnicodeDecodeError"),
        (msgpack.packb({"a": 1}) + b"\x00\x00", "2 unexpected byte(s) after the end"),
        (b"", "Unpack failed"),
        (
            msgpack.packb(
                {
                    "c": {
                        "__msgpack_chunked_array__": True,
                        "shape": {"0": 10**12},
                        "chunks": {"0": 1},
                    }
                }
            ),
            "are not 1-D arrays",
        ),
    ],
)
def test_specific_hostile_inputs(data, reason):
    with pytest.raises(ser.MalformedDataError) as info:
        ser.msgpack_restore(data)
    assert reason in str(info.value)


def _huge_chunked() -> bytes:
    chunk = ext(1, array_payload([4], "float32", b"\0" * 16))
    body = msgpack.packb(
        {"__msgpack_chunked_array__": True, "shape": {"0": 10**12}, "chunks": {"0": 0}}
    )
    return body[: body.rindex(b"\x00")] + chunk  # replace the placeholder chunk by the ext


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_huge_chunked(), "needs 4000000000000 bytes, but 16 are given"),
        (
            msgpack.packb({"x": msgpack.ExtType(1, array_payload([10**12], "float64", b"\0" * 8))}),
            "needs 8000000000000 bytes, but 8 are given",
        ),
    ],
)
def test_huge_claims_are_refused_without_allocating(data, reason):
    tracemalloc.start()
    try:
        with pytest.raises(ser.MalformedDataError, match=reason):
            ser.msgpack_restore(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_length_prefix_beyond_the_input_is_refused_quickly():
    # a bin32 header that claims 2 GiB followed by nothing
    data = b"\x81\xa1x\xc6" + struct.pack(">I", 2**31)
    with pytest.raises(ser.MalformedDataError):
        ser.msgpack_restore(data)


def test_from_bytes_refuses_the_same_way():
    with pytest.raises(ser.MalformedDataError):
        ser.from_bytes({"x": np.zeros(1)}, b"\x81\xa1x")


def test_non_bytes_input_is_a_type_error():
    with pytest.raises(TypeError, match="takes bytes, not str"):
        ser.msgpack_restore("abc")


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(VALID))
def test_mutated_bytes_into_a_target(data):
    target = {"w": np.zeros((5, 8), np.float32), "s": [np.int8(0), 0j]}
    try:
        with deadline(5):
            ser.from_bytes(target, data)
    except (ser.MalformedDataError, ser.StateMismatchError):
        pass
