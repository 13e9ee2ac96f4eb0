"""The template's test: the installed plug-in is found, built by name, and trains."""

import doctest

import jax
import jax.numpy as jnp
import my_ramie_layers
import pytest

from ramie import core, layers


def test_built_by_name_from_the_installed_distribution():
    scale = layers.build({"type": "Scale", "features": 3, "init": 0.5}, rngs=0)
    assert type(scale) is my_ramie_layers.Scale
    assert layers.registry.origin("Scale").distribution == "my-ramie-layers"
    assert scale(jnp.ones((2, 3))).tolist() == [[0.5] * 3] * 2


def test_gradient_reaches_the_scale():
    scale = my_ramie_layers.Scale(2)
    graphdef, params = core.split(scale, core.Param)

    def loss(params):
        return jnp.sum(core.merge(graphdef, params)(jnp.array([[1.0, 3.0]])))

    grads = jax.grad(loss)(params)
    assert grads["scale"].value.tolist() == [1.0, 3.0]


def test_docstring_examples():
    failures, tried = doctest.testmod(my_ramie_layers)
    assert tried > 0 and failures == 0


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
