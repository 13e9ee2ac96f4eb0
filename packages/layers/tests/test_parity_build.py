"""Activations by name in build() (issue 15), validated when the config is built."""

import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core, layers
from ramie.layers import _build


def test_activation_config_and_bare_name_in_a_sequential():
    model = layers.build(
        {
            "type": "Sequential",
            "layers": [
                {"type": "Linear", "in_features": 2, "out_features": 3},
                {"type": "relu"},
                {"type": "Linear", "in_features": 3, "out_features": 3},
                "tanh",
                {"type": "leaky_relu", "negative_slope": 0.5},
            ],
        },
        rngs=0,
    )
    assert model.layers[1] == layers.Activation("relu")
    assert model.layers[3] == layers.Activation("tanh")
    x = jnp.array([[1.0, -2.0]])
    a, b = model.layers[0], model.layers[2]
    h = jnp.tanh(b(jnp.maximum(a(x), 0.0)))
    np.testing.assert_allclose(model(x), jnp.where(h >= 0, h, 0.5 * h), rtol=1e-6)
    graphdef, state = core.split(model)  # static and hashable: splits and merges
    np.testing.assert_allclose(core.merge(graphdef, state)(x), model(x))


def test_a_bad_string_entry_fails_at_build_time():
    config = {"type": "Sequential", "layers": [{"type": "Linear", "in_features": 2,
              "out_features": 3}, "rleu"]}  # fmt: skip
    with pytest.raises(layers.LayerConfigError) as info:
        layers.build(config, rngs=0)
    assert str(info.value) == _build.BAD_LAYER_ENTRY.format(
        path="config['layers'][1]",
        found="rleu",
        type="Sequential",
        hint=" Did you mean 'relu'?",
        names=", ".join(sorted(layers.ACTIVATIONS)),
    )


def test_activation_keywords_are_checked():
    with pytest.raises(layers.LayerConfigError) as info:
        layers.build({"type": "relu", "slope": 2}, rngs=0)
    assert str(info.value) == _build.ACTIVATION_KEYS.format(
        path="config", name="relu", keys="'slope'", accepted="none"
    )
    gelu = layers.build({"type": "gelu", "approximate": False}, rngs=0)
    np.testing.assert_allclose(gelu(jnp.ones(2)), layers.gelu(jnp.ones(2), approximate=False))


def test_every_exported_activation_is_buildable():
    for name in layers.ACTIVATIONS:
        assert getattr(layers, name) is layers.ACTIVATIONS[name]
        assert layers.build({"type": name}, rngs=0) == layers.Activation(name)


def test_initializer_names_are_flax_nnxs():
    import jax

    expected = (
        "Initializer constant delta_orthogonal glorot_normal glorot_uniform he_normal he_uniform "
        "kaiming_normal kaiming_uniform lecun_normal lecun_uniform normal ones ones_init "
        "orthogonal truncated_normal uniform variance_scaling xavier_normal xavier_uniform zeros "
        "zeros_init"
    ).split()
    assert sorted(layers.initializers.__all__) == expected
    key = jax.random.key(0)
    assert layers.initializers.zeros_init()(key, (2, 3)).tolist() == [[0.0] * 3] * 2
    assert layers.initializers.ones_init()(key, (2,), jnp.bfloat16).dtype == jnp.bfloat16
    bn = layers.BatchNorm(2, scale_init=layers.initializers.zeros_init(), rngs=core.Rngs(0))
    assert bn.scale.value.tolist() == [0.0, 0.0]
