"""Each error a user can act on: which layer (and where in the model), expected, got, the fix."""

import jax
import jax.numpy as jnp
import pytest

import ramie.layers as layers
from ramie.core import Module, Rngs, RngStreamError, merge, split
from ramie.layers import _errors


class Block(Module):
    def __init__(self, rngs):
        self.encoder = layers.Sequential(
            layers.Linear(4, 8, rngs=rngs), layers.relu, layers.Linear(8, 2, rngs=rngs)
        )
        self.norm = layers.LayerNorm(2, rngs=rngs)

    def __call__(self, x):
        return self.norm(self.encoder(x))


class Net(Module):
    def __init__(self, rngs):
        self.block = Block(rngs)
        self.conv = layers.Conv(3, 4, (3, 3), rngs=rngs)
        self.drop = layers.Dropout(0.5)

    def __call__(self, x):
        return self.block(x)


def test_linear_wrong_features_names_path_expected_found_and_fix():
    net = Net(Rngs(0))
    with pytest.raises(layers.LayerError) as info:
        net(jnp.ones((2, 5)))
    msg = str(info.value)
    assert msg == _errors.FEATURES_MISMATCH.format(
        where="Linear at 'block/encoder/layers/0'",
        expected=4,
        shape=(2, 5),
        found=5,
        arg="in_features",
    )
    assert "in_features=5" in msg


def test_linear_error_alone_names_the_type_only():
    with pytest.raises(layers.LayerError, match=r"^Linear expected inputs .* shape \(3,\)"):
        layers.Linear(2, 2, rngs=Rngs(0))(jnp.ones(3))


def test_errors_raise_under_jit_via_split_merge_with_the_path():
    graphdef, state = split(Net(Rngs(0)))

    @jax.jit
    def f(state, x):
        return merge(graphdef, state)(x)

    with pytest.raises(layers.LayerError, match="Linear at 'block/encoder/layers/0'"):
        f(state, jnp.ones((2, 7)))


def test_conv_channels_first_says_ramie_is_nhwc():
    conv = layers.Conv(3, 4, (3, 3), rngs=Rngs(0))
    with pytest.raises(layers.LayerError) as info:
        conv(jnp.ones((2, 3, 16, 16)))
    assert str(info.value) == _errors.CONV_CHANNELS_FIRST.format(
        where="Conv", expected=3, shape=(2, 3, 16, 16), axis=1
    )
    assert "NHWC" in str(info.value) and "jnp.moveaxis(x, 1, -1)" in str(info.value)


def test_conv_other_channel_mismatch_and_rank():
    conv = layers.Conv(3, 4, (3, 3), rngs=Rngs(0))
    with pytest.raises(layers.LayerError, match="expected inputs whose last axis has 3 features"):
        conv(jnp.ones((2, 8, 8, 5)))
    with pytest.raises(layers.LayerError, match="at least 3 axes; got shape \\(8, 3\\)"):
        conv(jnp.ones((8, 3)))


@pytest.mark.parametrize("cls", [layers.BatchNorm, layers.LayerNorm, layers.RMSNorm])
def test_norm_feature_mismatch(cls):
    norm = cls(4, rngs=Rngs(0))
    with pytest.raises(layers.LayerError) as info:
        norm(jnp.ones((2, 6)))
    assert str(info.value) == _errors.NORM_FEATURES.format(
        where=cls.__name__, expected=4, axis=1, shape=(2, 6), found=6
    )


def test_layernorm_mismatch_inside_a_model_names_its_path():
    with pytest.raises(layers.LayerError, match="^LayerNorm was built for 2"):
        Block(Rngs(0)).norm(jnp.ones((1, 3)))  # called directly: no enclosing model
    block = Block(Rngs(0))
    block.encoder.layers[2] = layers.Linear(8, 3, rngs=Rngs(1))
    with pytest.raises(layers.LayerError, match="^LayerNorm at 'norm' was built for 2 features"):
        block(jnp.ones((1, 4)))


def test_embed_float_indices():
    embed = layers.Embed(10, 4, rngs=Rngs(0))
    with pytest.raises(layers.LayerTypeError) as info:
        embed(jnp.ones((2, 3)))
    assert str(info.value) == _errors.EMBED_INDICES.format(
        where="Embed", dtype="float32", shape=(2, 3)
    )
    assert isinstance(info.value, TypeError) and "astype(jnp.int32)" in str(info.value)


def test_mha_heads_must_divide_features_at_construction():
    with pytest.raises(layers.LayerError) as info:
        layers.MultiHeadAttention(num_heads=3, in_features=8, rngs=Rngs(0))
    assert str(info.value) == _errors.HEADS_DIVIDE.format(features=8, heads=3, suggestion="2, 4, 1")
    with pytest.raises(layers.LayerError, match="num_kv_heads=3"):
        layers.MultiHeadAttention(num_heads=4, in_features=8, num_kv_heads=3, rngs=Rngs(0))


def test_dropout_without_rng_stream_says_how_to_pass_rngs():
    net = Net(Rngs(0))
    with pytest.raises(RngStreamError) as info:
        net.drop(jnp.ones(3))
    assert str(info.value) == _errors.NO_DROPOUT_RNG.format(where="Dropout", rate=0.5)
    assert "rngs=Rngs(0, dropout=1)" in str(info.value)
    net.eval()  # evaluation mode needs no stream
    assert bool((net.drop(jnp.ones(3)) == 1).all())
    net.train()
    out = net.drop(jnp.ones(100), rngs=jax.random.key(0))  # a key at call time works
    assert set(out.tolist()) == {0.0, 2.0}


def test_dropout_with_rngs_lacking_the_stream():
    with pytest.raises(RngStreamError, match="no stream 'dropout'"):
        layers.Dropout(0.1, rngs=Rngs(params=0))


def test_raw_key_is_accepted_where_rngs_is_expected():
    key = jax.random.key(0)
    a = layers.Linear(2, 3, rngs=key)
    b = layers.Linear(2, 3, rngs=Rngs(key))
    assert bool((a.kernel.value == b.kernel.value).all())
    raw = jax.random.key_data(key)
    c = layers.Linear(2, 3, rngs=raw)
    assert bool((c.kernel.value == b.kernel.value).all())
    drop = layers.Dropout(0.5, rngs=key)
    assert drop(jnp.ones(8)).shape == (8,)


@pytest.mark.parametrize("bad", [0, None, "seed"])
def test_non_rngs_says_to_wrap_in_rngs(bad):
    with pytest.raises(layers.LayerTypeError) as info:
        layers.Conv(3, 4, 3, rngs=bad)
    msg = str(info.value)
    assert msg.startswith("Conv(..., rngs=...) takes a ramie.core.Rngs")
    assert f"rngs=Rngs({bad if isinstance(bad, int) else 0})" in msg


def test_sequential_wrong_number_of_arguments():
    rngs = Rngs(0)
    model = layers.Sequential(lambda x: (x, x), layers.Linear(2, 2, rngs=rngs))
    with pytest.raises(layers.LayerError) as info:
        model(jnp.ones((1, 2)))
    msg = str(info.value)
    assert msg.startswith("Sequential: layer 1 (Linear) cannot be called with 2 positional")
    assert "output of layer 0 (function)" in msg
    with pytest.raises(layers.LayerError, match="arguments the Sequential itself was called"):
        layers.Sequential(layers.Linear(2, 2, rngs=rngs))(jnp.ones(2), jnp.ones(2))


def test_sequential_reraises_type_errors_from_inside_a_layer():
    def broken(x):
        return x + "a string"

    with pytest.raises(TypeError) as info:
        layers.Sequential(broken)(jnp.ones(2))
    assert not isinstance(info.value, layers.LayerError)


def test_decode_errors():
    mha = layers.MultiHeadAttention(2, 8, decode=True, rngs=Rngs(0))
    with pytest.raises(layers.LayerError, match="no key/value cache. Call layer.init_cache"):
        mha(jnp.ones((1, 1, 8)))
    mha.init_cache((1, 4, 8))
    with pytest.raises(layers.LayerError, match=r"expects keys of shape \(1, 1, 2, 4\)"):
        mha(jnp.ones((1, 2, 8)))
