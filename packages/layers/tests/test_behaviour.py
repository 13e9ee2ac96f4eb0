"""Numbers each layer must produce, checked without Flax (the equivalence tests need it)."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie import layers
from ramie.core import Rngs


@settings(max_examples=8, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), max_size=2),
    din=st.integers(1, 5),
    dout=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_linear_is_x_kernel_plus_bias(batch, din, dout, seed):
    layer = layers.Linear(din, dout, rngs=Rngs(seed))
    layer.bias.value = jnp.arange(dout, dtype=jnp.float32)
    x = jax.random.normal(jax.random.key(seed), (*batch, din))
    expected = np.asarray(x) @ np.asarray(layer.kernel.value) + np.arange(dout)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_linear_default_initialisers():
    layer = layers.Linear(200, 300, rngs=Rngs(0))
    assert float(jnp.abs(layer.bias.value).max()) == 0.0
    # lecun_normal: variance 1 / fan_in (truncated normal)
    assert abs(float(layer.kernel.value.std()) - (1 / 200) ** 0.5) < 0.005


def test_batchnorm_running_statistics_and_modes():
    bn = layers.BatchNorm(2, momentum=0.9, rngs=Rngs(0))
    x = jnp.array([[0.0, 10.0], [2.0, 30.0]])
    y = bn(x)
    np.testing.assert_allclose(bn.mean.value, 0.1 * np.array([1.0, 20.0]), rtol=1e-6)
    np.testing.assert_allclose(bn.var.value, 0.9 + 0.1 * np.array([1.0, 100.0]), rtol=1e-6)
    np.testing.assert_allclose(y, [[-1, -1], [1, 1]], atol=1e-3)
    bn.eval()
    mean = bn.mean.value
    y = bn(x)
    np.testing.assert_array_equal(bn.mean.value, mean)  # eval never updates
    np.testing.assert_allclose(y, (x - mean) / jnp.sqrt(bn.var.value + 1e-5), rtol=1e-5)
    bn.train()
    bn(x)
    assert not np.allclose(bn.mean.value, mean)


def test_layernorm_and_rmsnorm_values():
    x = jnp.array([[1.0, 2.0, 3.0, 6.0]])
    y = layers.LayerNorm(4, rngs=Rngs(0))(x)
    ref = (x - x.mean()) / jnp.sqrt(x.var() + 1e-6)
    np.testing.assert_allclose(y, ref, rtol=1e-5)
    y = layers.RMSNorm(4, rngs=Rngs(0))(x)
    np.testing.assert_allclose(y, x / jnp.sqrt((x**2).mean() + 1e-6), rtol=1e-5)
    assert not hasattr(layers.RMSNorm(4, rngs=Rngs(0)), "bias")


def test_groupnorm_normalises_each_group():
    x = jax.random.normal(jax.random.key(0), (2, 3, 4)) * 5 + 2
    y = layers.GroupNorm(4, num_groups=2, rngs=Rngs(0))(x)
    groups = y.reshape(2, 3, 2, 2)
    np.testing.assert_allclose(groups.mean(axis=(1, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(groups.var(axis=(1, 3)), 1, atol=1e-3)


def test_dropout_rate_scale_and_broadcast_dims():
    drop = layers.Dropout(0.25, broadcast_dims=(0,), rngs=Rngs(0))
    y = drop(jnp.ones((5, 400)))
    assert set(np.unique(y).tolist()) == {0.0, float(np.float32(1) / np.float32(0.75))}
    np.testing.assert_array_equal(y[0], y[4])  # one mask shared along axis 0
    assert 0.15 < float((y[0] == 0).mean()) < 0.35
    assert not np.array_equal(drop(jnp.ones((5, 400))), y)  # a new mask per call


def test_conv_identity_kernel_and_circular_padding():
    conv = layers.Conv(1, 1, (3,), padding="CIRCULAR", use_bias=False, rngs=Rngs(0))
    conv.kernel.value = jnp.array([1.0, 0.0, 0.0]).reshape(3, 1, 1)  # y[i] = x[i - 1]
    x = jnp.arange(5.0).reshape(1, 5, 1)
    np.testing.assert_array_equal(conv(x)[0, :, 0], [4.0, 0.0, 1.0, 2.0, 3.0])
    conv = layers.Conv(2, 2, (1, 1), use_bias=False, rngs=Rngs(0))
    conv.kernel.value = jnp.eye(2).reshape(1, 1, 2, 2)
    x = jax.random.normal(jax.random.key(1), (3, 4, 4, 2))
    np.testing.assert_allclose(conv(x), x, rtol=1e-6)


def test_conv_groups_and_extra_batch_axes():
    conv = layers.Conv(4, 6, (3, 3), feature_group_count=2, rngs=Rngs(0))
    assert conv.kernel.shape == (3, 3, 2, 6)
    x = jnp.ones((2, 3, 5, 5, 4))
    assert conv(x).shape == (2, 3, 5, 5, 6)


def test_pooling_values():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(
        layers.max_pool(x, (2, 2), (2, 2))[0, :, :, 0], [[5.0, 7.0], [13.0, 15.0]]
    )
    np.testing.assert_array_equal(
        layers.min_pool(x, (2, 2), (2, 2))[0, :, :, 0], [[0.0, 2.0], [8.0, 10.0]]
    )
    np.testing.assert_array_equal(
        layers.avg_pool(x, (2, 2), (2, 2))[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]]
    )
    y = layers.avg_pool(jnp.ones((1, 3, 1)), (2,), padding="SAME", count_include_pad=False)
    np.testing.assert_array_equal(y[0, :, 0], [1.0, 1.0, 1.0])
    y = layers.avg_pool(jnp.ones((1, 3, 1)), (2,), padding="SAME")
    np.testing.assert_array_equal(y[0, :, 0], [1.0, 1.0, 0.5])


def test_masks():
    np.testing.assert_array_equal(
        layers.make_causal_mask(jnp.ones((1, 3)))[0, 0], np.tril(np.ones((3, 3)))
    )
    assert layers.combine_masks(None, None) is None
    mask = layers.make_attention_mask(jnp.array([[1, 0]]), jnp.array([[1, 1, 0]]))
    assert mask.shape == (1, 1, 2, 3)
    np.testing.assert_array_equal(mask[0, 0], [[1, 1, 0], [0, 0, 0]])


def test_attention_mask_blocks_positions():
    q = jax.random.normal(jax.random.key(0), (1, 2, 1, 4))
    k = jax.random.normal(jax.random.key(1), (1, 3, 1, 4))
    v = jnp.eye(3, 4).reshape(1, 3, 1, 4)  # the output holds the attention weights
    mask = jnp.array([1, 1, 0]).reshape(1, 1, 1, 3)
    out = layers.dot_product_attention(q, k, v, mask=mask)[0, :, 0, :3]
    np.testing.assert_allclose(out[:, 2], 0, atol=1e-6)
    np.testing.assert_allclose(out.sum(-1), 1, rtol=1e-6)
    weights = layers.dot_product_attention_weights(q, k, mask=mask)[0, 0]
    np.testing.assert_allclose(weights, out, rtol=1e-5, atol=1e-6)


def test_mha_decode_matches_causal_attention():
    rngs = Rngs(0)
    mha = layers.MultiHeadAttention(2, 8, rngs=rngs)
    x = jax.random.normal(jax.random.key(0), (2, 4, 8))
    full = mha(x, mask=layers.make_causal_mask(jnp.ones((2, 4))))
    mha.init_cache(x.shape)
    steps = [mha(x[:, t : t + 1], decode=True) for t in range(4)]
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, rtol=1e-5, atol=1e-5)
    assert int(mha.cache_index.value) == 4


def test_mha_sow_weights():
    mha = layers.MultiHeadAttention(2, 8, rngs=Rngs(0))
    mha(jnp.ones((1, 3, 8)), sow_weights=True)
    assert mha.attention_weights.value[0].shape == (1, 2, 3, 3)


def test_rnn_equals_a_python_loop_and_handles_seq_lengths():
    cell = layers.GRUCell(3, 4, rngs=Rngs(0))
    rnn = layers.RNN(cell, return_carry=True)
    x = jax.random.normal(jax.random.key(0), (2, 5, 3))
    carry, ys = rnn(x)
    h = cell.initialize_carry((2, 3))
    outs = []
    for t in range(5):
        h, y = cell(h, x[:, t])
        outs.append(y)
    np.testing.assert_allclose(ys, jnp.stack(outs, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry, h, rtol=1e-5, atol=1e-6)
    carry, _ = rnn(x, seq_lengths=jnp.array([2, 5]))
    np.testing.assert_allclose(carry[0], ys[0, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry[1], ys[1, 4], rtol=1e-5, atol=1e-6)


def test_rnn_reverse_and_time_major():
    rnn = layers.RNN(layers.SimpleCell(3, 4, rngs=Rngs(0)))
    x = jax.random.normal(jax.random.key(0), (2, 5, 3))
    backwards = rnn(x, reverse=True, keep_order=True)
    forwards_on_flipped = rnn(x[:, ::-1])[:, ::-1]
    np.testing.assert_allclose(backwards, forwards_on_flipped, rtol=1e-5, atol=1e-6)
    time_major = rnn(jnp.swapaxes(x, 0, 1), time_major=True)
    np.testing.assert_allclose(jnp.swapaxes(time_major, 0, 1), rnn(x), rtol=1e-5, atol=1e-6)


def test_embed_attend_is_tied_output():
    embed = layers.Embed(5, 3, rngs=Rngs(0))
    h = embed(jnp.array([0, 4]))
    np.testing.assert_array_equal(h, embed.embedding.value[jnp.array([0, 4])])
    np.testing.assert_allclose(embed.attend(h), h @ embed.embedding.value.T, rtol=1e-6)


def test_prelu_and_lora_linear():
    np.testing.assert_allclose(layers.PReLU(0.5)(jnp.array([-2.0, 2.0])), [-1.0, 2.0])
    layer = layers.LoRALinear(3, 2, lora_rank=1, rngs=Rngs(0))
    layer.lora.lora_b.value = jnp.ones((1, 2))
    x = jnp.ones((1, 3))
    expected = x @ layer.kernel.value + x @ layer.lora.lora_a.value @ layer.lora.lora_b.value
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6)
