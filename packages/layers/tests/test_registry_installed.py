"""The real fixture plug-ins (tests/plugins/good and broken), pip-installed by nox.

Skipped when they are not installed; failed instead when ``RAMIE_TEST_PLUGINS=1``
(set by the layers nox session, which installs them), so they can never be
skipped silently there. To run these outside nox::

    pip install packages/layers/tests/plugins/good packages/layers/tests/plugins/broken
"""

import importlib.metadata
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core
from ramie.layers import PluginError, PluginWarning, _plugins, build, registry

GOOD, BROKEN = "ramie-testplugin-good", "ramie-testplugin-broken"


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(autouse=True)
def installed_fixtures(monkeypatch):
    """Skip (or fail, under RAMIE_TEST_PLUGINS=1) without the fixtures; reset the registry."""
    missing = [dist for dist in (GOOD, BROKEN) if not _installed(dist)]
    if missing and os.environ.get("RAMIE_TEST_PLUGINS") == "1":
        pytest.fail(f"RAMIE_TEST_PLUGINS=1 but the fixture plug-ins {missing} are not installed")
    if missing:
        pytest.skip(f"the fixture plug-ins {missing} are not installed (nox installs them)")
    for name in ("RAMIE_STRICT_PLUGINS", "RAMIE_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)
    registry._forget()  # discover afresh in each test ...
    yield
    registry._forget()  # ... and leave the next one a registry that has not loaded yet


def load_with_warnings() -> list[str]:
    """Discover the plug-ins now; return the warnings that gave, as text."""
    with pytest.warns(PluginWarning) as record:
        registry.reload()
    return [str(w.message) for w in record]


def test_the_broken_plugins_only_warn_naming_entry_point_and_distribution():
    messages = load_with_warnings()
    assert len(messages) == 2
    hook, imp = sorted(messages)  # 'hook-error' < 'import-error'
    assert hook.startswith(
        "ramie.layers: the plug-in 'hook-error' (entry point 'hook-error = "
        "ramie_testplugin_broken.hook_error' of the distribution ramie-testplugin-broken 0.1.0) "
        "failed to register its layers: RuntimeError: ramie_testplugin_broken.hook_error fails "
        "on purpose. It was skipped"
    )
    assert imp.startswith(
        "ramie.layers: the plug-in 'import-error' (entry point 'import-error = "
        "ramie_testplugin_broken.import_error' of the distribution ramie-testplugin-broken "
        "0.1.0) failed to import: ImportError: ramie_testplugin_broken.import_error is broken "
        "on purpose. It was skipped"
    )
    assert "HalfRegistered" not in registry  # the failed hook's registration was undone
    by_name = {p.name: p for p in registry.plugins()}
    assert by_name["good"].error is None and by_name["good"].layers == ("ScaledLinear",)
    assert by_name["hook-error"].error.startswith("failed to register its layers: RuntimeError")
    assert by_name["import-error"].distribution == BROKEN


def test_the_good_plugin_registers_with_its_origin():
    load_with_warnings()
    assert "ScaledLinear" in registry
    assert registry.origin("ScaledLinear") == (GOOD, "0.1.0")
    assert registry.get("ScaledLinear").__module__ == "ramie_testplugin_good"


def test_the_plugin_layer_builds_trains_a_step_and_round_trips():
    load_with_warnings()
    config = {"type": "ScaledLinear", "in_features": 3, "out_features": 2, "scale": 0.5}
    model = build(config, rngs=core.Rngs(params=0))
    assert model.kernel.value.shape == (3, 2) and model.scale == 0.5
    x = jax.random.normal(jax.random.key(1), (16, 3))
    y = x @ jnp.array([[1.0, -1.0], [2.0, 0.0], [0.0, 3.0]])

    graphdef, params = core.split(model, core.Param)

    def loss(params):
        return jnp.mean((core.merge(graphdef, params)(x) - y) ** 2)

    def raw_loss(kernel, bias):  # the same function on plain arrays
        return jnp.mean((0.5 * (x @ kernel + bias) - y) ** 2)

    grads = jax.grad(loss)(params)
    raw = jax.grad(raw_loss, argnums=(0, 1))(model.kernel.value, model.bias.value)
    np.testing.assert_allclose(grads["kernel"].value, raw[0], rtol=1e-5)
    np.testing.assert_allclose(grads["bias"].value, raw[1], rtol=1e-5)
    new = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
    assert float(loss(new)) < float(loss(params))
    core.update(model, new)
    np.testing.assert_allclose(model.kernel.value, new["kernel"].value)

    graphdef, state = core.split(model)
    rebuilt = core.merge(graphdef, state)
    assert type(rebuilt) is type(model) and rebuilt.scale == 0.5
    np.testing.assert_array_equal(rebuilt(x), model(x))
    assert core.graphdef(rebuilt) == graphdef


def test_strict_mode_turns_the_broken_plugin_into_an_error(monkeypatch):
    monkeypatch.setenv("RAMIE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError) as info:
        registry.reload()
    assert "ramie-testplugin-broken 0.1.0" in str(info.value)
    assert str(info.value).endswith(_plugins.STRICT_ADVICE.format(dist_name=BROKEN))


def test_autoload_off_loads_neither_fixture(monkeypatch):
    monkeypatch.setenv("RAMIE_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry.reload()  # no warning: nothing is imported
    assert "ScaledLinear" not in registry
    assert {p.distribution for p in registry.plugins()} >= {GOOD, BROKEN}


def test_importing_ramie_layers_imports_no_plugin():
    script = textwrap.dedent(
        """
        import sys, warnings
        import ramie.layers
        assert not [m for m in sys.modules if m.startswith("ramie_testplugin")]
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            assert "ScaledLinear" in ramie.layers.registry
        assert "ramie_testplugin_good" in sys.modules
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
