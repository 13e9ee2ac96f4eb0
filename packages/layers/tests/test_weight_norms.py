"""SpectralNorm and WeightNorm: the numbers they promise, their state, and their errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie import layers
from ramie.core import Module, Param, PathContains, Rngs, merge, split
from ramie.layers import _errors


def _x(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


# --- SpectralNorm -------------------------------------------------------------------------


def test_spectral_norm_gives_unit_spectral_norm_and_stores_sigma():
    rngs = Rngs(0)
    linear = layers.Linear(6, 4, rngs=rngs)
    true_sigma = float(np.linalg.norm(np.asarray(linear.kernel.value), ord=2))
    layer = layers.SpectralNorm(linear, n_steps=50, rngs=rngs)
    layer(_x(2, 6))
    kernel = np.asarray(layer.layer_instance.kernel.value)
    np.testing.assert_allclose(np.linalg.norm(kernel, ord=2), 1.0, rtol=1e-4)
    np.testing.assert_allclose(layer.batch_stats["kernel"]["sigma"].value, true_sigma, rtol=1e-4)
    assert layer.batch_stats["kernel"]["u"].value.shape == (1, 4)
    assert "bias" not in layer.batch_stats  # 1-D Params are left alone


def test_spectral_norm_flattens_a_conv_kernel_to_a_matrix():
    rngs = Rngs(0)
    conv = layers.Conv(3, 5, (2, 2), rngs=rngs)
    matrix = np.asarray(conv.kernel.value).reshape(-1, 5)
    layer = layers.SpectralNorm(conv, n_steps=50, rngs=rngs)
    assert layer(_x(1, 4, 4, 3)).shape == (1, 4, 4, 5)
    np.testing.assert_allclose(
        layer.batch_stats["kernel"]["sigma"].value, np.linalg.norm(matrix, ord=2), rtol=1e-4
    )
    written = np.asarray(layer.layer_instance.kernel.value)
    np.testing.assert_allclose(np.linalg.norm(written.reshape(-1, 5), ord=2), 1.0, rtol=1e-4)


def test_spectral_norm_stats_change_only_when_updating():
    layer = layers.SpectralNorm(layers.Linear(3, 4, rngs=Rngs(0)), rngs=Rngs(1))
    stats = layer.batch_stats["kernel"]
    u0, s0 = stats["u"].value, stats["sigma"].value
    layer(_x(2, 3), update_stats=False)
    np.testing.assert_array_equal(stats["u"].value, u0)
    np.testing.assert_array_equal(stats["sigma"].value, s0)
    layer.eval()
    assert layer.use_running_average is True
    layer(_x(2, 3))
    np.testing.assert_array_equal(stats["u"].value, u0)
    layer.train()
    layer(_x(2, 3))
    assert not np.allclose(stats["u"].value, u0)
    # the kernel was already divided by sigma (written back) in the eval calls: now ~1
    assert abs(float(stats["sigma"].value) - 1.0) < 0.05
    u1 = stats["u"].value
    layer(_x(2, 3), update_stats=False)  # an explicit argument beats the mode
    np.testing.assert_array_equal(stats["u"].value, u1)


def test_spectral_norm_update_stats_false_at_construction_starts_in_eval_mode():
    layer = layers.SpectralNorm(layers.Linear(3, 4, rngs=Rngs(0)), update_stats=False, rngs=Rngs(0))
    u0 = layer.batch_stats["kernel"]["u"].value
    layer(_x(2, 3))
    np.testing.assert_array_equal(layer.batch_stats["kernel"]["u"].value, u0)


def test_spectral_norm_zero_steps_leaves_params_alone():
    linear = layers.Linear(3, 4, rngs=Rngs(0))
    kernel = linear.kernel.value
    layer = layers.SpectralNorm(linear, n_steps=0, rngs=Rngs(0))
    assert layer.batch_stats == {}
    np.testing.assert_array_equal(layer(_x(2, 3)), linear(_x(2, 3)))
    np.testing.assert_array_equal(linear.kernel.value, kernel)


def test_spectral_norm_gradient_flows_through_sigma_under_jit():
    layer = layers.SpectralNorm(layers.Linear(3, 4, rngs=Rngs(0)), n_steps=5, rngs=Rngs(0))
    graphdef, params, rest = split(layer, Param, ...)
    x = _x(2, 3)

    def loss(params, rest):
        model = merge(graphdef, params, rest)
        return jnp.sum(model(x) ** 2), split(model, Param, ...)[2]

    grads, new_rest = jax.jit(jax.grad(loss, has_aux=True))(params, rest)
    g = np.asarray(grads.flat_state()[("layer_instance", "kernel")].value)
    kernel = np.asarray(layer.layer_instance.kernel.value)
    # d(W / sigma(W)) with u, v held fixed: the gradient is not the plain one scaled
    sigma = float(new_rest.flat_state()[("batch_stats", "kernel", "sigma")].value)
    y = x @ (kernel / sigma) + layer.layer_instance.bias.value
    plain = np.asarray(x.T @ (2 * y)) / sigma
    assert np.isfinite(g).all() and not np.allclose(g, plain, atol=1e-4)
    assert float(new_rest.flat_state()[("batch_stats", "kernel", "sigma")].value) != 1.0


# --- WeightNorm -------------------------------------------------------------------------


@settings(max_examples=8, deadline=None)
@given(
    din=st.integers(1, 5),
    dout=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_weight_norm_column_norms_equal_the_scales(din, dout, seed):
    layer = layers.WeightNorm(layers.Linear(din, dout, rngs=Rngs(seed)), rngs=Rngs(seed))
    scales = jnp.arange(1, dout + 1, dtype=jnp.float32) / 2
    layer.scales["kernel"].value = scales
    before = np.asarray(layer.layer_instance.kernel.value)
    x = _x(3, din, seed=seed)
    y = layer(x)
    kernel = np.asarray(layer.layer_instance.kernel.value)
    np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), scales, rtol=1e-5)
    # same direction as before, so the output is x @ (scaled unit columns) + bias
    expected = before / np.linalg.norm(before, axis=0) * np.asarray(scales)
    np.testing.assert_allclose(kernel, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        y, x @ expected + layer.layer_instance.bias.value, rtol=1e-5, atol=1e-5
    )


def test_weight_norm_whole_param_and_no_scale():
    conv = layers.Conv(3, 4, (2, 2), rngs=Rngs(0))
    whole = layers.WeightNorm(conv, feature_axes=None, rngs=Rngs(0))
    whole.scales["kernel"].value = jnp.asarray(3.0)
    whole(_x(1, 3, 3, 3))
    np.testing.assert_allclose(np.linalg.norm(conv.kernel.value), 3.0, rtol=1e-5)
    plain = layers.WeightNorm(layers.Linear(3, 4, rngs=Rngs(0)), use_scale=False, rngs=Rngs(0))
    assert plain.scales is None
    plain(_x(2, 3))
    np.testing.assert_allclose(
        np.linalg.norm(plain.layer_instance.kernel.value, axis=0), np.ones(4), rtol=1e-5
    )


def test_weight_norm_finds_kernels_inside_a_nested_layer():
    rngs = Rngs(0)
    model = layers.Sequential(
        layers.Linear(3, 5, rngs=rngs), layers.relu, layers.Linear(5, 2, rngs=rngs)
    )
    layer = layers.WeightNorm(model, scale_init=jax.nn.initializers.constant(2.0), rngs=rngs)
    assert sorted(layer.scales["layers"]) == [0, 2]
    layer(_x(4, 3))
    for i, width in ((0, 5), (2, 2)):
        kernel = model.layers[i].kernel.value
        np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), 2 * np.ones(width), rtol=1e-5)


def test_weight_norm_scales_get_gradients():
    layer = layers.WeightNorm(layers.Linear(3, 4, rngs=Rngs(0)), rngs=Rngs(0))
    graphdef, params, rest = split(layer, Param, ...)

    def loss(params):
        return jnp.sum(merge(graphdef, params, rest)(_x(2, 3)) ** 2)

    flat = jax.grad(loss)(params).flat_state()
    assert set(flat) == {
        ("layer_instance", "kernel"),
        ("layer_instance", "bias"),
        ("scales", "kernel"),
    }
    assert bool((flat[("scales", "kernel")].value != 0).all())
    # the kernel's gradient is orthogonal to each (unit-normalised) column: only directions count
    kernel = np.asarray(layer.layer_instance.kernel.value)
    dots = np.sum(np.asarray(flat[("layer_instance", "kernel")].value) * kernel, axis=0)
    np.testing.assert_allclose(dots, np.zeros(4), atol=1e-5)


def test_weight_norm_passes_extra_arguments_to_the_layer():
    cell = layers.SimpleCell(3, 4, rngs=Rngs(0))
    layer = layers.WeightNorm(cell, variable_filter=PathContains("kernel"), rngs=Rngs(0))
    carry, y = layer(jnp.zeros((2, 4)), _x(2, 3))
    assert carry.shape == y.shape == (2, 4)


# --- errors -------------------------------------------------------------------------------


def test_error_non_matrix_names_the_param():
    conv = layers.Conv(3, 5, (2, 2), rngs=Rngs(0))
    with pytest.raises(layers.LayerError) as info:
        layers.SpectralNorm(conv, error_on_non_matrix=True, rngs=Rngs(0))
    assert str(info.value) == _errors.SPECTRAL_NON_MATRIX.format(
        where="SpectralNorm", path="layer_instance/kernel", ndim=4, shape=(2, 2, 3, 5), last=5
    )
    assert "'layer_instance/kernel' is 4-D (shape (2, 2, 3, 5))" in str(info.value)
    layers.SpectralNorm(layers.Linear(3, 5, rngs=Rngs(0)), error_on_non_matrix=True, rngs=Rngs(0))


@pytest.mark.parametrize("n_steps", [-1, 1.5, True])
def test_error_bad_n_steps(n_steps):
    with pytest.raises(layers.LayerError) as info:
        layers.SpectralNorm(layers.Linear(3, 5, rngs=Rngs(0)), n_steps=n_steps, rngs=Rngs(0))
    assert str(info.value) == _errors.SPECTRAL_STEPS.format(found=repr(n_steps))


@pytest.mark.parametrize("cls", [layers.SpectralNorm, layers.WeightNorm])
def test_error_not_a_layer(cls):
    with pytest.raises(layers.LayerTypeError) as info:
        cls(jnp.ones((3, 3)), rngs=Rngs(0))
    assert str(info.value) == _errors.NOT_A_LAYER.format(wrapper=cls.__name__, found="ArrayImpl")


def test_error_filter_selects_nothing():
    with pytest.raises(layers.LayerError) as info:
        layers.WeightNorm(
            layers.Linear(3, 5, rngs=Rngs(0)), variable_filter=PathContains("w"), rngs=Rngs(0)
        )
    assert str(info.value) == _errors.WEIGHT_NORM_NOTHING_SELECTED.format(
        where="WeightNorm", filter="PathContains(key='w')", layer="Linear", paths="bias, kernel"
    )


def test_error_feature_axes_out_of_range():
    with pytest.raises(layers.LayerError) as info:
        layers.WeightNorm(layers.Linear(3, 5, rngs=Rngs(0)), feature_axes=2, rngs=Rngs(0))
    assert str(info.value) == _errors.WEIGHT_NORM_AXES.format(
        where="WeightNorm", axes=2, path="layer_instance/kernel", ndim=2
    )


class _Holder(Module):
    def __init__(self):
        self.first = layers.Linear(2, 2, rngs=Rngs(0))

    def __call__(self, x):
        return self.first(x)


@pytest.mark.parametrize("cls", [layers.SpectralNorm, layers.WeightNorm])
def test_error_wrapped_params_changed_after_building(cls):
    layer = cls(_Holder(), rngs=Rngs(0))
    layer.layer_instance.second = layers.Linear(2, 2, rngs=Rngs(1))
    what = "u and sigma BatchStats" if cls is layers.SpectralNorm else "scale Param"
    with pytest.raises(layers.LayerError) as info:
        layer(jnp.ones((1, 2)))
    assert str(info.value) == _errors.WRAPPED_PARAM_CHANGED.format(
        where=cls.__name__, path="layer_instance/second/kernel", what=what
    )
