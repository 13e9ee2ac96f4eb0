"""safetensors files (flat keys, numpy API) and the PyTorch state-dict mapping."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
from timeouts import SPECIAL_KINDS, deadline, make_special

from ramie import core
from ramie import serialization as ser
from ramie.serialization._safetensors_read import DTYPES


class Model(core.Module):
    def __init__(self):
        self.layers = [core.Module(), core.Module()]
        self.layers[0].kernel = core.Param(jnp.arange(6.0).reshape(2, 3))
        self.layers[1].kernel = core.Param(jnp.ones((3, 1), jnp.bfloat16))
        self.norm = core.Module()
        self.norm.mean = core.BatchStat(jnp.full(3, 0.5))
        self.step = core.BatchStat(jnp.array(7, jnp.int32))


def test_save_uses_flat_keys_and_loads_back(tmp_path):
    path = tmp_path / "model.safetensors"
    state = core.state(Model())
    ser.save_safetensors(path, state, metadata={"format": "ramie"})
    flat = safetensors.numpy.load_file(str(path))
    assert sorted(flat) == ["layers.0.kernel", "layers.1.kernel", "norm.mean", "step"]
    np.testing.assert_array_equal(flat["layers.0.kernel"], np.arange(6.0).reshape(2, 3))
    with safetensors.safe_open(str(path), framework="np") as f:
        assert f.metadata() == {"format": "ramie"}
    nested = ser.load_safetensors(path)
    assert nested["layers"]["1"]["kernel"].dtype == jnp.bfloat16
    restored = ser.load_safetensors(path, jax.eval_shape(lambda: core.state(Model())))
    assert type(restored["norm"]["mean"]) is core.BatchStat
    assert restored["layers"][0]["kernel"].value.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert int(restored["step"].value) == 7


def test_load_checks_the_target(tmp_path):
    path = tmp_path / "m.safetensors"
    ser.save_safetensors(path, {"a": {"w": np.zeros((2, 2), np.float32)}})
    with pytest.raises(
        ser.StateMismatchError, match=r"a/w: target has float32\[4\]; data has float32\[2,2\]"
    ):
        ser.load_safetensors(path, {"a": {"w": np.zeros(4, np.float32)}})


def test_unwritable_values_name_their_path(tmp_path):
    with pytest.raises(ser.SerializationError, match="the key 'a.b' contains a '.'"):
        ser.save_safetensors(tmp_path / "x", {"a.b": np.zeros(1)})
    with pytest.raises(
        ser.UnsupportedTypeError, match="Cannot write 'cfg/name' to safetensors: it is a str"
    ):
        ser.save_safetensors(tmp_path / "x", {"cfg": {"name": "x"}})


def test_corrupt_file_is_refused(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\xff" * 8 + b"{")
    with pytest.raises(ser.MalformedDataError, match="is not a valid safetensors file"):
        ser.load_safetensors(path)


# -- PyTorch layout -----------------------------------------------------------


def _torch_like(rng):
    """A PyTorch-named state dict: conv (OIHW), batch norm, linear (out, in), embedding."""
    return {
        "features.0.weight": rng.normal(size=(8, 3, 3, 3)).astype(np.float32),
        "features.0.bias": rng.normal(size=8).astype(np.float32),
        "features.1.weight": rng.normal(size=8).astype(np.float32),
        "features.1.bias": rng.normal(size=8).astype(np.float32),
        "features.1.running_mean": rng.normal(size=8).astype(np.float32),
        "features.1.running_var": rng.uniform(1, 2, size=8).astype(np.float32),
        "features.1.num_batches_tracked": np.array(10),
        "fc.weight": rng.normal(size=(5, 8)).astype(np.float32),
        "fc.bias": rng.normal(size=5).astype(np.float32),
        "tok.weight": rng.normal(size=(11, 4)).astype(np.float32),
    }


def _ramie_target():
    sds = jax.ShapeDtypeStruct
    f32 = jnp.float32
    return {
        "layers": [
            {"kernel": sds((3, 3, 3, 8), f32), "bias": sds((8,), f32)},
            {
                "scale": sds((8,), f32),
                "bias": sds((8,), f32),
                "mean": sds((8,), f32),
                "var": sds((8,), f32),
            },
        ],
        "fc": {"kernel": sds((8, 5), f32), "bias": sds((5,), f32)},
        "tok": {"embedding": sds((11, 4), f32)},
    }


def test_torch_state_dict_maps_onto_flax_layout_and_computes_the_same():
    rng = np.random.default_rng(0)
    torch_sd = _torch_like(rng)
    params = ser.from_torch_state_dict(torch_sd, _ramie_target(), rename={"features": "layers"})
    # Conv: torch NCHW x OIHW == ramie NHWC x HWIO with the mapped kernel
    x = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)
    torch_out = jax.lax.conv_general_dilated(
        x, torch_sd["features.0.weight"], (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")
    )
    ramie_out = jax.lax.conv_general_dilated(
        x.transpose(0, 2, 3, 1), params["layers"][0]["kernel"], (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )  # fmt: skip
    np.testing.assert_allclose(ramie_out.transpose(0, 3, 1, 2), torch_out, rtol=1e-5, atol=1e-5)
    # Linear: x @ W.T + b == x @ kernel + bias
    h = rng.normal(size=(4, 8)).astype(np.float32)
    np.testing.assert_allclose(
        h @ params["fc"]["kernel"] + params["fc"]["bias"],
        h @ torch_sd["fc.weight"].T + torch_sd["fc.bias"],
        rtol=1e-5,
    )
    bn = params["layers"][1]
    np.testing.assert_array_equal(bn["scale"], torch_sd["features.1.weight"])
    np.testing.assert_array_equal(bn["mean"], torch_sd["features.1.running_mean"])
    np.testing.assert_array_equal(bn["var"], torch_sd["features.1.running_var"])
    np.testing.assert_array_equal(params["tok"]["embedding"], torch_sd["tok.weight"])
    assert isinstance(params["fc"]["kernel"], jax.Array)


def test_torch_names_without_a_place_are_listed():
    torch_sd = _torch_like(np.random.default_rng(1))
    with pytest.raises(ser.StateMismatchError) as info:
        ser.from_torch_state_dict(torch_sd, _ramie_target())  # no rename: features.* unknown
    message = str(info.value)
    assert (
        "features: target has nothing (the key is missing); data has a mapping with keys ['0', '1']"
        in message
    )
    assert "layers/0/kernel: target has float32[3,3,3,8]; data has nothing" in message


# -- hostile and odd files ------------------------------------------------------


def _file(tmp_path, header: dict, data: bytes = b"", length: int | None = None):
    raw = json.dumps(header).encode()
    path = tmp_path / "x.safetensors"
    path.write_bytes((len(raw) if length is None else length).to_bytes(8, "little") + raw + data)
    return path


def _refused(path, detail: str) -> None:
    with deadline(10):
        with pytest.raises(ser.MalformedDataError) as info:
            ser.load_safetensors(path)
    assert str(info.value) == ser._errors.SAFETENSORS_MALFORMED.format(file=path, detail=detail)


@pytest.mark.parametrize("kind", list(SPECIAL_KINDS))
def test_only_regular_files_are_read(tmp_path, kind):
    path = tmp_path / "m.safetensors"
    name = make_special(path, kind)
    _refused(path, f"it is a {name}")


@pytest.mark.parametrize(
    ("dtype", "code"),
    [
        ("float8_e8m0fnu", "F8_E8M0"),
        ("float8_e4m3fn", "F8_E4M3"),
        ("float8_e5m2", "F8_E5M2"),
        ("bfloat16", "BF16"),
        ("complex64", "C64"),
    ],
)
def test_every_dtype_safetensors_writes_loads_back(tmp_path, dtype, code):
    values = np.array([0.5, 1.0, 2.0, 4.0], np.float32).astype(getattr(jnp, dtype))
    path = tmp_path / "m.safetensors"
    ser.save_safetensors(path, {"w": values})
    raw = path.read_bytes()
    assert json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])["w"]["dtype"] == code
    out = ser.load_safetensors(path)["w"]
    assert out.dtype == values.dtype
    np.testing.assert_array_equal(out.view(np.uint8), values.view(np.uint8))


def test_malformed_headers_name_the_file_and_the_tensor(tmp_path):
    ok = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    _refused(
        _file(tmp_path, {"w": {"dtype": "F32", "shape": [0, 2**62], "data_offsets": [0, 0]}}),
        "tensor 'w': the shape [0, 4611686018427387904] holds 4611686018427387904, not a "
        "non-negative int",
    )
    _refused(
        _file(tmp_path, {"w": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}}, b"\0"),
        "tensor 'w' has dtype 'F4', not one ramie reads (" + ", ".join(DTYPES) + ")",
    )
    _refused(
        _file(tmp_path, {"w": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}}, b"\1\0\2"),
        "tensor 'w' is BOOL but holds bytes other than 0 and 1",
    )
    _refused(
        _file(tmp_path, {"w": ok}, b"\0" * 8, length=2**63),
        f"the header claims {2**63} bytes, but {len(json.dumps({'w': ok})) + 8} follow the length",
    )
    _refused(
        _file(tmp_path, {"w": {**ok, "data_offsets": [0, 2**40]}}, b"\0" * 8),
        "tensor 'w': an array of shape (2,) and dtype float32 needs 8 bytes, but "
        "1099511627776 are given",
    )
    _refused(
        _file(tmp_path, {"w": ok, "v": {**ok, "data_offsets": [4, 12]}}, b"\0" * 12),
        "tensor 'v' starts at 4, not at 8: gap or overlap",
    )
    _refused(_file(tmp_path, {"w": ok}, b"\0" * 9), "the tensors cover 8 bytes of data, but the "
             "file holds 9")  # fmt: skip
    path = tmp_path / "y.safetensors"
    raw = b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "w": {}}'
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + b"\0" * 8)
    _refused(path, "the header names 'w' twice")
    clash = _file(tmp_path, {"a": ok, "a.b": {**ok, "data_offsets": [8, 16]}}, b"\0" * 16)
    with pytest.raises(ser.MalformedDataError) as info:
        ser.load_safetensors(clash)
    assert str(info.value).startswith(
        f"Cannot read safetensors file {clash}: the name 'a.b' goes through 'a', which is also "
        "an array."
    )


def test_a_sparse_file_is_refused_at_once(tmp_path):
    path = tmp_path / "m.safetensors"
    ser.save_safetensors(path, {"w": np.ones(4, np.float32)})
    with open(path, "r+b") as f:
        f.truncate(1 << 40)  # 1 TiB of holes after a header that covers 16 bytes
    with deadline(10):
        with pytest.raises(ser.MalformedDataError, match="the tensors cover 16 bytes of data"):
            ser.load_safetensors(path)


def test_a_sparse_file_that_claims_all_its_holes_is_refused_without_reading(tmp_path):
    size = 1 << 43  # 8 TiB: more than this machine can allocate
    raw = json.dumps({"w": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}).encode()
    path = tmp_path / "m.safetensors"
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        f.truncate(8 + len(raw) + size)
    with deadline(10):
        with pytest.raises(ser.MalformedDataError, match=f"tensor 'w' needs {size} bytes"):
            ser.load_safetensors(path)
