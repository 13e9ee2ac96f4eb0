"""Silent wrong results from issue 15, each pinned by the numbers it must give."""

import os
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import layers
from ramie.core import Rngs
from ramie.layers import _errors


def _exact_norm(x: np.ndarray, axes) -> np.ndarray:
    x = np.asarray(x, np.float64)
    mean = x.mean(axes, keepdims=True)
    return (x - mean) / np.sqrt(x.var(axes, keepdims=True))


# -- variance at large offsets ------------------------------------------------


def test_the_issue_snippet_layernorm_at_offset_1e4():
    y = layers.LayerNorm(4, rngs=Rngs(0))(1e4 + jnp.array([0.0, 1.0, 2.0, 3.0]))
    np.testing.assert_allclose(y, [-1.3416, -0.4472, 0.4472, 1.3416], atol=1e-3)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("offset", [1e3, 1e4, 1e5])
@pytest.mark.parametrize("name", ["LayerNorm", "BatchNorm", "GroupNorm", "InstanceNorm"])
def test_norms_are_right_at_large_offsets(name, offset, dtype):
    rng = np.random.default_rng(0)
    step = float(
        np.spacing(np.asarray(offset, jnp.bfloat16 if dtype == jnp.bfloat16 else np.float32))
    )
    spread = max(1.0, 4 * step)  # differences the input dtype can represent at this offset
    x = jnp.asarray(offset + spread * rng.normal(size=(8, 3, 4)), dtype)
    kw = dict(dtype=dtype, param_dtype=dtype, rngs=Rngs(0))
    layer, axes = {
        "LayerNorm": (lambda: layers.LayerNorm(4, **kw), (2,)),
        "BatchNorm": (lambda: layers.BatchNorm(4, **kw), (0, 1)),
        "GroupNorm": (lambda: layers.GroupNorm(4, num_groups=1, **kw), (1, 2)),
        "InstanceNorm": (lambda: layers.InstanceNorm(4, **kw), (1,)),
    }[name]
    y = layer()(x)
    expected = _exact_norm(np.asarray(x, np.float64), axes)
    assert y.dtype == dtype
    # statistics are computed in float32: the mean is only as exact as float32 at the offset
    mean_error = 4 * float(np.spacing(np.float32(offset))) / spread
    tol = (0.05 if dtype == jnp.bfloat16 else 1e-3) + mean_error
    np.testing.assert_allclose(np.asarray(y, np.float64), expected, atol=tol, rtol=tol)


def test_fast_variance_is_an_opt_in_that_loses_precision_at_offsets():
    x = 1e4 + jnp.array([0.0, 1.0, 2.0, 3.0])
    fast = layers.LayerNorm(4, use_fast_variance=True, rngs=Rngs(0))(x)
    assert layers.LayerNorm(4, rngs=Rngs(0)).use_fast_variance is False
    assert float(jnp.abs(fast).max()) > 10  # the cancellation the stable default avoids
    small = jnp.array([0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(
        layers.LayerNorm(4, use_fast_variance=True, rngs=Rngs(0))(small),
        layers.LayerNorm(4, rngs=Rngs(0))(small),
        atol=1e-5,
    )


def test_batchnorm_batch_of_one_warns_and_says_why():
    bn = layers.BatchNorm(3, rngs=Rngs(0))
    with pytest.warns(layers.BatchOfOneWarning) as record:
        bn(jnp.ones((1, 3)))
    assert str(record[0].message) == _errors.BATCH_OF_ONE.format(
        where="BatchNorm", count=1, shape=(1, 3)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bn(jnp.ones((2, 3)))  # two examples: no warning
        layers.BatchNorm(3, rngs=Rngs(0))(jnp.ones((1, 4, 4, 3)))  # 16 values per channel
        bn.eval()
        bn(jnp.ones((1, 3)))  # evaluation never touches the statistics


# -- dropout ------------------------------------------------------------------


def test_attention_dropout_rate_one_is_zeros_not_nan():
    q = jnp.ones((1, 4, 2, 8))
    out = layers.dot_product_attention(
        q, q, q, dropout_rate=1.0, deterministic=False, dropout_rng=jax.random.key(0)
    )
    assert out.shape == (1, 4, 2, 8) and float(jnp.abs(out).max()) == 0.0
    mha = layers.MultiHeadAttention(2, 8, dropout_rate=1.0, rngs=Rngs(0))
    y = mha(jnp.ones((1, 3, 8)))
    assert not bool(jnp.isnan(y).any())
    np.testing.assert_allclose(y, jnp.broadcast_to(mha.out.bias.value, y.shape))


@pytest.mark.parametrize("rate", [-0.5, 1.5, float("nan"), "0.5", True])
def test_dropout_rate_outside_0_1_is_an_error(rate):
    for make, arg in [
        (lambda: layers.Dropout(rate), "rate"),
        (lambda: layers.MultiHeadAttention(2, 8, dropout_rate=rate, rngs=Rngs(0)), "dropout_rate"),
    ]:
        with pytest.raises(layers.LayerError) as info:
            make()
        layer = "Dropout" if arg == "rate" else "MultiHeadAttention"
        assert str(info.value) == _errors.BAD_DROPOUT_RATE.format(layer=layer, arg=arg, rate=rate)


def test_dropout_rate_bounds_are_accepted():
    assert float(layers.Dropout(0)(jnp.ones(3)).sum()) == 3.0
    assert float(layers.Dropout(1.0)(jnp.ones(3)).sum()) == 0.0


def test_dropout_on_an_explicitly_sharded_input():
    code = textwrap.dedent(
        """
        import jax, jax.numpy as jnp
        from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
        from ramie import layers
        from ramie.core import Rngs
        mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Explicit,))
        x = jax.device_put(jnp.ones((16, 4)), NamedSharding(mesh, P("data")))
        with jax.set_mesh(mesh):
            y = layers.Dropout(0.5, rngs=Rngs(0))(x)
            z = layers.Dropout(0.5, broadcast_dims=(1,), rngs=Rngs(0))(x)
        assert y.sharding.spec == P("data", None), y.sharding
        assert sorted(set(y.reshape(-1).tolist())) == [0.0, 2.0]
        assert bool(((z == 0).all(1) | (z == 2).all(1)).all())
        print("ok")
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


# -- shapes that crashed ------------------------------------------------------


def test_conv_one_int_per_spatial_axis():
    conv = layers.Conv(3, 6, (7, 4), padding=(4, 2), rngs=Rngs(0))
    x = jax.random.normal(jax.random.key(1), (1, 24, 9, 3))
    explicit = layers.Conv(3, 6, (7, 4), padding=((4, 4), (2, 2)), rngs=Rngs(0))
    assert conv(x).shape == (1, 26, 10, 6)
    np.testing.assert_array_equal(conv(x), explicit(x))
    up = layers.ConvTranspose(3, 2, (3, 3), padding=(1, 0), rngs=Rngs(0))
    up_explicit = layers.ConvTranspose(3, 2, (3, 3), padding=((1, 1), (0, 0)), rngs=Rngs(0))
    np.testing.assert_array_equal(up(x), up_explicit(x))


def test_einsum_ellipsis_in_the_kernel_with_a_bias():
    layer = layers.Einsum("d...ab,bc...->ad...c", (4, 5, 6, 7), (6, 7, 5), rngs=Rngs(0))
    x = jax.random.normal(jax.random.key(1), (8, 6, 7, 3, 4))
    layer.bias.value = jax.random.normal(jax.random.key(2), (6, 7, 5))
    y = layer(x)
    expected = jnp.einsum("d...ab,bc...->ad...c", x, layer.kernel.value) + layer.bias.value
    assert y.shape == (3, 8, 6, 7, 5)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    # the kernel's ellipsis axes land in the output's: a bias over them and c broadcasts there
    other = layers.Einsum("...b,bc...->c...", (4, 5, 6), (5, 6), rngs=Rngs(0))
    other.bias.value = jnp.arange(30.0).reshape(5, 6)
    z = other(jnp.ones((6, 4)))
    np.testing.assert_allclose(
        z, jnp.einsum("...b,bc...->c...", jnp.ones((6, 4)), other.kernel.value) + other.bias.value,
        rtol=1e-5,
    )  # fmt: skip
