"""build(config, rngs=...): layers from plain dicts, nested configs, and its error messages."""

import uuid

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie import core
from ramie.layers import LayerConfigError, LayerRegistry, UnknownLayerError, _build, build


class Dense(core.Module):
    def __init__(self, in_features: int, out_features: int, *, use_bias: bool = True, rngs):
        self.kernel = core.Param(jax.random.normal(rngs.params(), (in_features, out_features)))
        self.bias = core.Param(jnp.zeros((out_features,))) if use_bias else None

    def __call__(self, x):
        y = x @ self.kernel
        return y if self.bias is None else y + self.bias


class Chain(core.Module):
    def __init__(self, *layers, name: str = "chain"):
        self.layers = list(layers)
        self.name = name

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Prefixed(core.Module):
    """A positional-only parameter, then *blocks."""

    def __init__(self, width, /, *blocks):
        self.width = width
        self.blocks = list(blocks)


class Holder(core.Module):
    """Takes layers inside a dict and a tuple, and any other key."""

    def __init__(self, named: dict, pair: tuple, **options):
        self.named = named
        self.pair = pair
        self.options = options


class Rngless(core.Module):
    def __init__(self, features: int):
        self.features = features


class Picky(core.Module):
    def __init__(self, features: int):
        if features < 1:
            raise ValueError(f"features must be positive, got {features}")


@pytest.fixture(scope="module")
def reg():
    registry = LayerRegistry(group=f"ramie.layers.test-{uuid.uuid4().hex}")
    for cls in (Dense, Chain, Prefixed, Holder, Rngless, Picky):
        registry.register(cls)
    return registry


def test_a_flat_config_builds_the_layer_with_rngs(reg):
    config = {"type": "Dense", "in_features": 3, "out_features": 4}
    layer = build(config, rngs=core.Rngs(params=7), registry=reg)
    assert isinstance(layer, Dense)
    assert layer.kernel.value.shape == (3, 4) and layer.bias.value.shape == (4,)
    expected = jax.random.normal(core.Rngs(params=7).params(), (3, 4))
    np.testing.assert_array_equal(layer.kernel.value, expected)
    assert config == {"type": "Dense", "in_features": 3, "out_features": 4}  # not mutated


def test_an_int_seed_or_a_key_stands_for_rngs(reg):
    config = {"type": "Dense", "in_features": 2, "out_features": 2}
    by_seed = build(config, rngs=5, registry=reg)
    by_key = build(config, rngs=jax.random.key(5), registry=reg)
    by_rngs = build(config, rngs=core.Rngs(5), registry=reg)
    np.testing.assert_array_equal(by_seed.kernel.value, by_rngs.kernel.value)
    np.testing.assert_array_equal(by_key.kernel.value, by_rngs.kernel.value)


@pytest.mark.parametrize("bad", ["seed", 1.5, None])
def test_bad_rngs_say_what_is_accepted(reg, bad):
    with pytest.raises(TypeError) as info:
        build({"type": "Rngless", "features": 1}, rngs=bad, registry=reg)
    assert str(info.value) == _build.BAD_RNGS.format(found=repr(bad))


def test_nested_configs_build_nested_layers_positionally_for_star_args(reg):
    config = {
        "type": "Chain",
        "layers": [
            {"type": "Dense", "in_features": 3, "out_features": 5},
            {"type": "Dense", "in_features": 5, "out_features": 2, "use_bias": False},
        ],
        "name": "mlp",
    }
    model = build(config, rngs=0, registry=reg)
    assert isinstance(model, Chain) and model.name == "mlp"
    first, second = model.layers
    assert isinstance(first, Dense) and isinstance(second, Dense)
    assert first.kernel.value.shape == (3, 5) and second.bias is None
    assert not np.array_equal(first.kernel.value[:2, :2], second.kernel.value[:2, :2])
    assert model(jnp.ones((4, 3))).shape == (4, 2)
    graphdef, params = core.split(model, core.Param)
    rebuilt = core.merge(graphdef, params)
    np.testing.assert_array_equal(rebuilt(jnp.ones((1, 3))), model(jnp.ones((1, 3))))


def test_configs_nest_inside_dicts_tuples_and_any_key(reg):
    dense = {"type": "Dense", "in_features": 1, "out_features": 1}
    config = {
        "type": "Holder",
        "named": {"a": dense, "b": {"plain": [1, dense]}},
        "pair": (dense, "text"),
        "extra": [dense],
    }
    holder = build(config, rngs=0, registry=reg)
    assert isinstance(holder.named["a"], Dense)
    assert holder.named["b"]["plain"][0] == 1 and isinstance(holder.named["b"]["plain"][1], Dense)
    assert isinstance(holder.pair, tuple) and isinstance(holder.pair[0], Dense)
    assert holder.pair[1] == "text"
    assert isinstance(holder.options["extra"][0], Dense)


def test_positional_only_parameters_are_passed_by_position(reg):
    config = {"type": "Prefixed", "width": 8, "blocks": [{"type": "Rngless", "features": 2}]}
    layer = build(config, rngs=0, registry=reg)
    assert layer.width == 8 and layer.blocks[0].features == 2
    assert build({"type": "Prefixed", "width": 3}, rngs=0, registry=reg).blocks == []


def test_constructors_without_rngs_do_not_get_it(reg):
    assert build({"type": "Rngless", "features": 4}, rngs=0, registry=reg).features == 4


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=2, max_size=5))
def test_a_chain_of_any_widths_builds_and_runs(reg, widths):
    layers = [
        {"type": "Dense", "in_features": a, "out_features": b}
        for a, b in zip(widths, widths[1:], strict=False)
    ]
    model = build({"type": "Chain", "layers": layers}, rngs=0, registry=reg)
    assert [layer.kernel.value.shape for layer in model.layers] == list(
        zip(widths, widths[1:], strict=False)
    )
    assert model(jnp.ones((2, widths[0]))).shape == (2, widths[-1])


def test_an_unknown_type_lists_close_matches(reg):
    with pytest.raises(UnknownLayerError) as info:
        build({"type": "Chain", "layers": [{"type": "Dence"}]}, rngs=0, registry=reg)
    message = str(info.value)
    assert "under the name 'Dence'. Did you mean 'Dense'?" in message
    assert "Installed plug-ins: none found" in message
    assert info.value.__notes__ == [_build.LOOKUP_NOTE.format(path="config['layers'][0]")]


# How the messages about Dense describe it.
DENSE = {
    "type": "Dense",
    "cls": "Dense",
    "accepted": "in_features (required), out_features (required), use_bias=True",
}


def test_unknown_keys_name_the_type_the_keys_and_the_parameters(reg):
    config = {"type": "Chain", "layers": [{"type": "Dense", "in_feature": 1, "out_features": 2}]}
    with pytest.raises(LayerConfigError) as info:
        build(config, rngs=0, registry=reg)
    assert str(info.value) == _build.UNKNOWN_KEYS.format(
        path="config['layers'][0]",
        keys="'in_feature'",
        hint=" Did you mean 'in_features' for 'in_feature'?",
        **DENSE,
    )


def test_missing_keys_are_named(reg):
    with pytest.raises(LayerConfigError) as info:
        build({"type": "Dense", "in_features": 1}, rngs=0, registry=reg)
    assert str(info.value) == _build.MISSING_KEYS.format(
        path="config", keys="'out_features'", **DENSE
    )
    with pytest.raises(LayerConfigError, match=r"lacks the required key\(s\) 'width'"):
        build({"type": "Prefixed"}, rngs=0, registry=reg)


def test_star_args_must_be_a_list(reg):
    with pytest.raises(LayerConfigError) as info:
        build({"type": "Chain", "layers": {"type": "Rngless", "features": 1}}, rngs=0, registry=reg)
    assert str(info.value).startswith(
        "build(): config['layers'] must be a list of configs (or values) that 'Chain' takes as "
        "*layers, but it is Rngless "
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            [("type", "Dense")],
            _build.NOT_A_CONFIG.format(path="config", found="list [('type', 'Dense')]"),
        ),
        ({"in_features": 1}, _build.NO_TYPE.format(path="config", keys="'in_features'")),
        ({}, _build.NO_TYPE.format(path="config", keys="none")),
        ({"type": Dense}, _build.BAD_TYPE.format(path="config", found=f"type {Dense!r}")),
        ({"type": "Dense", "rngs": 0}, _build.RNGS_IN_CONFIG.format(path="config")),
    ],
)
def test_malformed_configs_say_what_is_expected(reg, config, message):
    with pytest.raises(LayerConfigError) as info:
        build(config, rngs=0, registry=reg)
    assert str(info.value) == message


def test_errors_from_a_constructor_keep_their_type_and_gain_a_note(reg):
    config = {"type": "Chain", "layers": [{"type": "Picky", "features": 0}]}
    with pytest.raises(ValueError, match="features must be positive, got 0") as info:
        build(config, rngs=0, registry=reg)
    assert info.value.__notes__ == [
        _build.BUILD_NOTE.format(type="Picky", path="config['layers'][0]")
    ]


def test_build_uses_the_global_registry_by_default(monkeypatch):
    from ramie.layers import _registry

    private = LayerRegistry(group=f"ramie.layers.test-{uuid.uuid4().hex}")
    private.register(Rngless)
    monkeypatch.setattr(_registry, "registry", private)
    assert build({"type": "Rngless", "features": 2}, rngs=0).features == 2
