"""The plug-in template is a real distribution: installed, found, built by name, tested."""

from __future__ import annotations

import importlib.metadata as metadata
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp

from ramie import layers

TEMPLATE = Path(__file__).resolve().parents[1] / "plugin_template"


def test_the_template_is_installed_with_its_entry_point():
    dist = metadata.distribution("my-ramie-layers")
    (entry,) = [e for e in dist.entry_points if e.group == "ramie.layers"]
    assert entry.value == "my_ramie_layers"
    assert dist.metadata["Name"] == "my-ramie-layers"


def test_its_layer_is_built_by_name():
    scale = layers.build({"type": "Scale", "features": 3}, rngs=0)
    assert scale(jnp.full((1, 3), 2.0)).tolist() == [[2.0, 2.0, 2.0]]
    origin = layers.registry.origin("Scale")
    assert (origin.distribution, origin.version) == ("my-ramie-layers", "0.1.0")
    nested = layers.build(
        {"type": "Sequential", "layers": [{"type": "Scale", "features": 2, "init": 3.0}]},
        rngs=0,
    )
    assert nested(jnp.ones((1, 2))).tolist() == [[3.0, 3.0]]


def test_the_templates_own_test_passes(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(TEMPLATE / "tests"), "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
