"""Byte compatibility with flax.serialization, both directions (skipped without flax)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_trees import trees

from ramie import core
from ramie import serialization as ser

flax_serialization = pytest.importorskip("flax.serialization")
nnx = pytest.importorskip("flax.nnx")


class FlaxModel(nnx.Module):
    def __init__(self, rngs):
        self.dense = nnx.Linear(3, 4, rngs=rngs)
        self.norm = nnx.BatchNorm(4, rngs=rngs)
        self.blocks = nnx.List([nnx.Linear(4, 4, rngs=rngs), nnx.Linear(4, 2, rngs=rngs)])


def _ramie_twin(pure: dict) -> core.State:
    """The ramie State of a model with the same attribute names holding the same arrays."""

    class Linear(core.Module):
        def __init__(self, p):
            self.kernel = core.Param(jnp.asarray(p["kernel"]))
            self.bias = core.Param(jnp.asarray(p["bias"]))

    class BatchNorm(core.Module):
        def __init__(self, p):
            self.scale = core.Param(jnp.asarray(p["scale"]))
            self.bias = core.Param(jnp.asarray(p["bias"]))
            self.mean = core.BatchStat(jnp.asarray(p["mean"]))
            self.var = core.BatchStat(jnp.asarray(p["var"]))

    class Model(core.Module):
        def __init__(self):
            self.dense = Linear(pure["dense"])
            self.norm = BatchNorm(pure["norm"])
            self.blocks = [Linear(pure["blocks"][0]), Linear(pure["blocks"][1])]

    return core.state(Model())


def _flax_pure():
    model = FlaxModel(nnx.Rngs(0))
    model.norm.mean[...] = jnp.arange(4.0)  # make every array distinct
    return nnx.to_pure_dict(nnx.state(model))


def _assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_ramie_state_bytes_equal_flax_bytes_of_the_nnx_pure_dict():
    pure = _flax_pure()
    assert ser.to_bytes(_ramie_twin(pure)) == flax_serialization.to_bytes(pure)


def test_flax_reads_ramie_bytes():
    pure = _flax_pure()
    zeros = jax.tree.map(np.zeros_like, pure)
    restored = flax_serialization.from_bytes(zeros, ser.to_bytes(_ramie_twin(pure)))
    _assert_same(restored, pure)


def test_ramie_reads_flax_bytes_into_an_abstract_state():
    pure = _flax_pure()
    abstract = jax.eval_shape(lambda: _ramie_twin(pure))
    ours = ser.from_bytes(abstract, flax_serialization.to_bytes(pure))
    assert isinstance(ours, core.State) and type(ours["norm"]["mean"]) is core.BatchStat
    _assert_same(core.to_pure_dict(ours), pure)


@pytest.mark.parametrize("name", sorted(trees()))
def test_golden_trees_match_flax(name):
    tree = trees()[name]
    ours = ser.to_bytes(tree)
    assert ours == flax_serialization.to_bytes(tree)
    assert ser.to_bytes(flax_serialization.msgpack_restore(ours)) == ours
    assert ser.to_bytes(ser.msgpack_restore(flax_serialization.to_bytes(tree))) == ours


def test_chunked_arrays_match_flax(monkeypatch):
    from ramie.serialization import _msgpack

    monkeypatch.setattr(_msgpack, "MAX_CHUNK_SIZE", 64)
    monkeypatch.setattr(flax_serialization, "MAX_CHUNK_SIZE", 64)
    tree = {"big": np.arange(50, dtype=np.float32).reshape(5, 10), "s": {"x": np.ones(3)}}
    ours = ser.to_bytes(tree)
    assert ours == flax_serialization.to_bytes(tree)
    np.testing.assert_array_equal(flax_serialization.msgpack_restore(ours)["big"], tree["big"])
    np.testing.assert_array_equal(ser.msgpack_restore(ours)["big"], tree["big"])


def test_bfloat16_matches_flax():
    tree = {"w": jnp.linspace(0, 1, 7, dtype=jnp.bfloat16)}
    assert ser.to_bytes(tree) == flax_serialization.to_bytes(tree)
    out = flax_serialization.msgpack_restore(ser.to_bytes(tree))
    assert out["w"].dtype == jnp.bfloat16
