"""Flax NNX layer keywords (issue 15) beyond the numeric Flax comparisons in _descriptors.py:
metadata, keep_rngs, mask semantics, is_causal and the promote_dtype hook."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import layers
from ramie.core import Rngs, RngStreamError


@pytest.mark.parametrize(
    "make, names",
    [
        (lambda m: layers.Linear(2, 3, kernel_metadata=m, bias_metadata=m, rngs=Rngs(0)),
         ["kernel", "bias"]),
        (lambda m: layers.LinearGeneral(2, 3, kernel_metadata=m, bias_metadata=m, rngs=Rngs(0)),
         ["kernel", "bias"]),
        (lambda m: layers.Einsum("ab,bc->ac", (2, 3), (3,), kernel_metadata=m, bias_metadata=m,
                                 rngs=Rngs(0)), ["kernel", "bias"]),
        (lambda m: layers.Conv(2, 3, 3, kernel_metadata=m, bias_metadata=m, rngs=Rngs(0)),
         ["kernel", "bias"]),
        (lambda m: layers.ConvTranspose(2, 3, 3, kernel_metadata=m, bias_metadata=m,
                                        rngs=Rngs(0)), ["kernel", "bias"]),
        (lambda m: layers.Embed(4, 2, embedding_metadata=m, rngs=Rngs(0)), ["embedding"]),
        (lambda m: layers.BatchNorm(2, scale_metadata=m, bias_metadata=m, rngs=Rngs(0)),
         ["scale", "bias"]),
        (lambda m: layers.LayerNorm(2, scale_metadata=m, bias_metadata=m, rngs=Rngs(0)),
         ["scale", "bias"]),
        (lambda m: layers.RMSNorm(2, scale_metadata=m, rngs=Rngs(0)), ["scale"]),
        (lambda m: layers.GroupNorm(2, num_groups=1, scale_metadata=m, bias_metadata=m,
                                    rngs=Rngs(0)), ["scale", "bias"]),
    ],
)  # fmt: skip
def test_metadata_keywords_reach_the_variables(make, names):
    layer = make({"sharding_names": ("a", "b"), "note": "x"})
    for name in names:
        assert getattr(layer, name).sharding_names == ("a", "b")
        assert getattr(layer, name).note == "x"


@pytest.mark.parametrize("name", ["LSTMCell", "OptimizedLSTMCell", "GRUCell", "SimpleCell"])
def test_cell_metadata_keywords(name):
    cell = getattr(layers, name)(
        2, 3, kernel_metadata={"note": "k"}, recurrent_kernel_metadata={"note": "r"},
        bias_metadata={"note": "b"}, rngs=Rngs(0),
    )  # fmt: skip
    notes = {}
    for path, module in cell.iter_modules():
        if isinstance(module, layers.Linear):
            notes[path[0]] = (module.kernel.note, None if module.bias is None else module.bias.note)
    inputs = {"dense_i", "ii", "if_", "ig", "io"}
    for attr, (kernel, bias) in notes.items():
        assert kernel == ("k" if attr in inputs else "r")
        assert bias in (None, "b")
    assert sum(bias == "b" for _, bias in notes.values()) >= 1


def test_lora_metadata_keywords():
    lora = layers.LoRALinear(2, 3, lora_rank=1, a_metadata={"note": "a"},
                             b_metadata={"note": "b"}, rngs=Rngs(0))  # fmt: skip
    assert (lora.lora.lora_a.note, lora.lora.lora_b.note) == ("a", "b")


def test_attention_metadata_keywords():
    meta = {"note": "qkv"}
    mha = layers.MultiHeadAttention(
        2, 4, kernel_metadata=meta, bias_metadata=meta, out_kernel_metadata={"note": "out"},
        normalize_qk=True, query_ln_scale_metadata={"note": "qln"}, rngs=Rngs(0),
    )  # fmt: skip
    assert [mha.query.kernel.note, mha.value.bias.note, mha.out.kernel.note] == ["qkv"] * 2 + [
        "out"
    ]
    assert mha.query_ln.scale.note == "qln" and not hasattr(mha.key_ln.scale, "note")


def test_keep_rngs_false_stores_no_stream_and_needs_rngs_at_call():
    mha = layers.MultiHeadAttention(2, 4, dropout_rate=0.5, keep_rngs=False, rngs=Rngs(0))
    assert mha.rngs is None
    x = jnp.ones((1, 3, 4))
    with pytest.raises(RngStreamError, match="^MultiHeadAttention is in training mode"):
        mha(x)
    a, b = mha(x, rngs=Rngs(dropout=1)), mha(x, rngs=Rngs(dropout=1))
    np.testing.assert_array_equal(a, b)


def test_is_causal_equals_an_explicit_causal_mask():
    mha = layers.MultiHeadAttention(2, 8, rngs=Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 5, 8))
    explicit = mha(x, mask=layers.make_causal_mask(x[..., 0]))
    np.testing.assert_allclose(mha(x, is_causal=True), explicit, rtol=1e-6, atol=1e-6)
    assert not np.allclose(mha(x), explicit, atol=1e-3)


def test_norm_mask_statistics_ignore_masked_values():
    x = jnp.array([[1.0, 2.0, 3.0, 1000.0]])
    mask = jnp.array([[True, True, True, False]])
    y = layers.LayerNorm(4, rngs=Rngs(0))(x, mask=mask)
    kept = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(y[0, :3], (kept - 2.0) / np.sqrt(kept.var() + 1e-6), rtol=1e-5)
    bn = layers.BatchNorm(1, momentum=0.0, rngs=Rngs(0))
    bn(x.reshape(4, 1), mask=mask.reshape(4, 1))
    assert float(bn.mean.value[0]) == 2.0
    np.testing.assert_allclose(bn.var.value, [kept.var()], rtol=1e-6)


def test_promote_dtype_hook_is_called_with_the_layers_dtype():
    seen = []

    def hook(args, *, dtype=None, inexact=True):
        seen.append((len(args), dtype, inexact))
        return layers.promote_dtype(args, dtype=dtype, inexact=inexact)

    layers.Linear(2, 2, dtype=jnp.float16, promote_dtype=hook, rngs=Rngs(0))(jnp.ones((1, 2)))
    layers.Embed(3, 2, promote_dtype=hook, rngs=Rngs(0))(jnp.array([1]))
    assert seen == [(3, jnp.float16, True), (1, jnp.float32, False)]
