"""Fuzzing the checkpoint index, the COMMIT marker and safetensors files.

With the msgpack fuzz of test_hostile.py (6,300 cases) these make over 10,000
cases. Each case runs in this process under a 5 s deadline (SIGALRM), so a hang
fails the case instead of the run; every case must either give a result or raise
the library's own error (never a raw exception), and the process's peak RSS may
not grow by more than a bounded amount over the whole fuzz.
"""

import json
import resource
import zlib

import msgpack
import numpy as np
import pytest
from fuzzing import mutated
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from timeouts import deadline

from ramie import serialization as ser
from ramie.serialization import _checkpoint_io as io
from ramie.serialization import _safetensors_read

SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TREE = {
    "a": np.arange(6.0).reshape(2, 3),
    "b": [np.int8(1), "s", None, 2j],
    "c": {"d": np.ones(4, np.float32), "e": np.zeros((0, 3), np.int32)},
    "f": np.array([True, False]),
}
MAX_RSS_GROWTH = 512 << 20  # bytes; a case allocating by a header's claim would exceed it


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.fixture(scope="module")
def step(tmp_path_factory):
    """A step directory, its valid index and its valid COMMIT (cases rewrite the files)."""
    directory = tmp_path_factory.mktemp("fuzz")
    ser.CheckpointManager(directory).save(0, TREE)
    step_dir = directory / "step_0"
    return step_dir, (step_dir / "index.msgpack").read_bytes(), (step_dir / "COMMIT").read_bytes()


@pytest.fixture(scope="module")
def rss_budget():
    start = _max_rss()
    yield
    assert _max_rss() - start < MAX_RSS_GROWTH


def _restore_or_refuse(directory) -> None:
    manager = ser.CheckpointManager(directory)
    with deadline(5):
        try:
            manager.restore(0)
        except ser.CheckpointCorruptError as e:
            assert str(e).startswith(f"Checkpoint file {directory / 'step_0'}/")
        report = manager.check()
    assert [(s.step, s.status) for s in report][:1] in ([(0, "good")], [(0, "corrupt")])


# -- the index ------------------------------------------------------------------
_ANY = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=4)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)
_REF = st.integers(0, 6).map(lambda n: msgpack.ExtType(64, n.to_bytes(4, "big")))
_LEAF = st.lists(
    st.one_of(
        st.sampled_from([1, 3, 2, 64]),
        st.lists(st.one_of(st.integers(0, 4), st.sampled_from([-1, 2**62, 2**63])), max_size=3),
        st.sampled_from(["float64", "float32", "int8", "bool", "object", "<U4", ""]),
        st.lists(st.lists(st.integers(-2, 300) | st.sampled_from([2**40]), max_size=3)),
        _ANY,
    ),
    min_size=3,
    max_size=5,
)


@st.composite
def crafted_index(draw) -> bytes:
    tree = draw(
        st.recursive(
            _REF | _ANY,
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
            max_leaves=8,
        )
    )
    index = {"version": draw(st.sampled_from([1, 1, 1, 2, "1"])), "tree": tree}
    index["leaves"] = draw(st.lists(_LEAF, max_size=6) | _ANY)
    return msgpack.packb(index, use_bin_type=True)


def _write_index(step_dir, index: bytes) -> None:
    (step_dir / "index.msgpack").write_bytes(index)
    commit = io.parse_commit((step_dir / "COMMIT").read_bytes(), 0)
    commit["files"]["index.msgpack"] = {"size": len(index), "crc32": zlib.crc32(index)}
    (step_dir / "COMMIT").write_bytes(io.encode_commit(0, commit["files"]))


@settings(max_examples=1200, **SETTINGS)
@given(data=st.data())
def test_fuzz_checkpoint_index(step, rss_budget, data):
    step_dir, valid_index, _ = step
    index = data.draw(mutated([valid_index]) | crafted_index())
    _write_index(step_dir, index)
    _restore_or_refuse(step_dir.parent)


# -- the COMMIT marker ------------------------------------------------------------
_RECORD = st.one_of(
    st.fixed_dictionaries(
        {
            "size": st.integers(-1, 2000) | st.sampled_from([2**40, 1.5, "1"]),
            "crc32": st.integers(0, 2**32) | st.sampled_from([None, "x"]),
        }
    ),
    _ANY,
)


@st.composite
def crafted_commit(draw) -> bytes:
    """JSON of any shape with a correct own-CRC line, so the structure checks run."""
    names = st.sampled_from(["state.msgpack", "index.msgpack", "metadata.json", "../x", "COMMIT"])
    commit = {
        "format": draw(st.sampled_from(["ramie-checkpoint", "other", 1])),
        "version": draw(st.sampled_from([1, 2, 2, 3, "2"])),
        "step": draw(st.sampled_from([0, 0, 1, -1, "0", None])),
        "files": draw(st.dictionaries(names, _RECORD, max_size=4) | _ANY),
    }
    for key in draw(st.lists(st.sampled_from(list(commit)), max_size=2)):
        commit.pop(key, None)
    body = json.dumps(commit).encode()
    if draw(st.booleans()):
        return body  # a version-1 marker (no own CRC)
    return body + b"\ncrc32 %08x\n" % zlib.crc32(body)


@settings(max_examples=1200, **SETTINGS)
@given(data=st.data())
def test_fuzz_commit_marker(step, rss_budget, data):
    step_dir, valid_index, valid_commit = step
    (step_dir / "index.msgpack").write_bytes(valid_index)
    (step_dir / "COMMIT").write_bytes(data.draw(mutated([valid_commit]) | crafted_commit()))
    _restore_or_refuse(step_dir.parent)


# -- safetensors ------------------------------------------------------------------
_ST_VALID = []


def _valid_safetensors() -> list[bytes]:
    if not _ST_VALID:
        import safetensors.numpy

        _ST_VALID.append(
            safetensors.numpy.save(
                {
                    "a.w": np.arange(6, dtype=np.float32).reshape(2, 3),
                    "a.b": np.array([True, False, True]),
                    "e": np.zeros((0, 4), np.int64),
                    "s": np.array(3, np.uint16),
                },
                metadata={"k": "v"},
            )
        )
    return _ST_VALID


_ST_DTYPE = st.sampled_from(
    [*_safetensors_read.DTYPES, "F4", "F6_E2M3", "Q8", "bool", "", "F32 ", "I128"]
)


@st.composite
def crafted_safetensors(draw) -> bytes:
    """A header of tensors that may or may not fit their data, and the data."""
    header: dict = {}
    offset = 0
    for i in range(draw(st.integers(0, 4))):
        dtype = draw(_ST_DTYPE)
        shape = draw(st.lists(st.integers(0, 3) | st.sampled_from([2**62, 2**63, -1]), max_size=3))
        itemsize = {"BOOL": 1, "U8": 1, "I8": 1, "F16": 2, "BF16": 2, "I16": 2, "U16": 2}.get(
            dtype, 4
        )
        n = int(np.prod(shape, dtype=object)) * itemsize if shape else itemsize
        if draw(st.booleans()) and 0 <= n < 64:
            offsets = [offset, offset + n]  # consistent
        else:
            offsets = draw(st.lists(st.integers(-1, 80) | st.sampled_from([2**64]), max_size=3))
        entry = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
        if draw(st.integers(0, 9)) == 0:
            entry = draw(_ANY)
        header[draw(st.sampled_from([f"t{i}", "a.b", "a", "__metadata__"]))] = entry
        if isinstance(offsets, list) and len(offsets) == 2 and isinstance(offsets[1], int):
            offset = max(offset, offsets[1])
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.dictionaries(st.text(max_size=3), _ANY, max_size=2))
    raw = json.dumps(header).encode()
    length = len(raw) if draw(st.integers(0, 7)) else draw(st.integers(0, 2**64 - 1))
    data = draw(st.binary(min_size=max(0, min(offset, 64) - 2), max_size=min(offset, 64) + 2))
    return length.to_bytes(8, "little") + raw + data


@settings(max_examples=2500, **SETTINGS)
@given(data=st.data())
def test_fuzz_safetensors(tmp_path_factory, rss_budget, data):
    path = tmp_path_factory.getbasetemp() / "fuzz.safetensors"
    path.write_bytes(data.draw(mutated(_valid_safetensors()) | crafted_safetensors()))
    with deadline(5):
        try:
            ser.load_safetensors(path)
        except ser.MalformedDataError as e:
            assert str(e).startswith(f"Cannot read {path}: ")
