"""Plug-in discovery, with distributions made on the fly (no pip install needed).

Each test writes ``*.dist-info`` directories (METADATA + entry_points.txt) and
plug-in modules into a temporary directory on ``sys.path``: importlib.metadata
finds them as it finds installed distributions. Their entry points use a group
of their own, so a ``LayerRegistry`` for that group sees only them.
"""

import importlib
import sys
import textwrap
import uuid
import warnings
from types import SimpleNamespace

import pytest

from ramie import layers
from ramie.layers import (
    DuplicateLayerError,
    LayerRegistry,
    Origin,
    PluginError,
    PluginInfo,
    PluginWarning,
    ProtectedLayerError,
    UnknownLayerError,
    _plugins,
    _registry,
    build,
)

GOOD = """
    import jax.numpy as jnp
    from ramie import core
    from ramie.layers import hookimpl

    class {cls}(core.Module):
        def __init__(self, features, *, rngs):
            self.w = core.Param(jnp.full((features,), 2.0))

    @hookimpl
    def ramie_register_layers(registry):
        registry.register({cls})
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Make fake installed distributions: ``site.dist(name, {ep: module}, {module: source})``."""
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("RAMIE_STRICT_PLUGINS", "RAMIE_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)
    prefix = f"plug_{uuid.uuid4().hex[:10]}"
    group = f"ramie.layers.test-{prefix}"

    def dist(name, entry_points, modules, version="1.2.3"):
        info = tmp_path / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = "".join(f"{ep} = {prefix}_{value}\n" for ep, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[{group}]\n{lines}")
        for module, source in modules.items():
            (tmp_path / f"{prefix}_{module}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()

    yield SimpleNamespace(
        dist=dist,
        group=group,
        module=lambda name: f"{prefix}_{name}",
        registry=lambda: LayerRegistry(group=group),
    )
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        del sys.modules[name]


def failure(site, name, module, dist, stage, error, strict=False, version="1.2.3"):
    """The message a plug-in failure gives, built from the module's constants."""
    advice = _plugins.STRICT_ADVICE if strict else _plugins.SKIPPED_ADVICE
    return _plugins.PLUGIN_FAILED.format(
        name=name,
        value=site.module(module),
        distribution=f"{dist} {version}",
        stage=stage,
        error=error,
        advice=advice.format(dist_name=dist),
    )


def test_a_plugin_registers_its_layers_with_their_origin(site):
    site.dist("fake-good", {"good": "good"}, {"good": GOOD.format(cls="Doubler")})
    reg = site.registry()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "Doubler" in reg
    assert reg.origin("Doubler") == Origin("fake-good", "1.2.3")
    assert reg.get("Doubler").__module__ == site.module("good")
    assert reg.plugins() == (
        PluginInfo("good", site.module("good"), "fake-good", "1.2.3", ("Doubler",), None),
    )
    layer = build({"type": "Doubler", "features": 3}, rngs=0, registry=reg)
    assert layer.w.value.tolist() == [2.0, 2.0, 2.0]


def test_a_plugin_that_fails_to_import_only_warns_and_the_rest_work(site):
    site.dist("fake-good", {"good": "good"}, {"good": GOOD.format(cls="Doubler")})
    site.dist("fake-bad", {"bad": "bad"}, {"bad": "raise ImportError('no such thing')"})
    reg = site.registry()
    with pytest.warns(PluginWarning) as record:
        assert "Doubler" in reg
    assert [str(w.message) for w in record] == [
        failure(site, "bad", "bad", "fake-bad", "import", "ImportError: no such thing")
    ]
    assert issubclass(PluginWarning, RuntimeWarning)
    assert reg.origin("Doubler") == ("fake-good", "1.2.3")
    bad = reg.plugins()[0]
    assert (bad.name, bad.distribution, bad.layers) == ("bad", "fake-bad", ())
    assert bad.error == "failed to import: ImportError: no such thing"
    with pytest.raises(UnknownLayerError) as info:
        reg.get("Doubler2")
    message = str(info.value)
    assert "Did you mean 'Doubler'?" in message
    assert (
        "Installed plug-ins: bad from fake-bad 1.2.3 (failed to import: ImportError: no such "
        "thing); good from fake-good 1.2.3 (layers Doubler)\n"
    ) in message


def test_a_hook_that_raises_only_warns_and_its_layers_are_dropped(site):
    source = GOOD.format(cls="Half") + "        raise ValueError('half way')\n"
    site.dist("fake-half", {"half": "half"}, {"half": source})
    reg = site.registry()
    with pytest.warns(PluginWarning) as record:
        assert "Half" not in reg  # it was registered, then the hook failed
    assert [str(w.message) for w in record] == [
        failure(site, "half", "half", "fake-half", "register its layers", "ValueError: half way")
    ]
    assert reg.plugins()[0].error == "failed to register its layers: ValueError: half way"


@pytest.mark.parametrize(
    ("source", "hint"),
    [
        ("X = 1\n", ""),
        ("def ramie_register_layers(registry):\n    pass\n", _plugins.UNMARKED_HOOK_HINT),
    ],
)
def test_a_module_without_a_marked_hook_warns(site, source, hint):
    site.dist("fake-nohook", {"nohook": "nohook"}, {"nohook": source})
    with pytest.warns(PluginWarning) as record:
        site.registry().names()
    error = _plugins.NO_HOOK.format(plugin=f"the module {site.module('nohook')}", hint=hint)
    expected = failure(
        site, "nohook", "nohook", "fake-nohook", "register its layers", f"PluginError: {error}"
    )
    assert [str(w.message) for w in record] == [expected]


def test_a_hook_with_a_wrong_signature_warns(site):
    source = GOOD.format(cls="Sig").replace("(registry)", "(registry, extra)")
    site.dist("fake-sig", {"sig": "sig"}, {"sig": source})
    with pytest.warns(PluginWarning, match=r"'sig'.*fake-sig 1\.2\.3.*PluginValidationError"):
        assert "Sig" not in site.registry()


def test_an_entry_point_may_name_an_object_with_the_hook(site):
    source = """
        from ramie import core
        from ramie.layers import hookimpl

        class Layer(core.Module):
            pass

        class Plugin:
            @hookimpl
            def ramie_register_layers(self, registry):
                registry.register(Layer, name="FromObject")

        plugin = Plugin()
    """
    site.dist("fake-object", {"object": "object:plugin"}, {"object": source})
    reg = site.registry()
    assert reg.origin("FromObject") == ("fake-object", "1.2.3")


def test_a_hook_may_use_the_registry_while_it_is_being_filled(site):
    source = (
        GOOD.format(cls="Second") + "        assert 'Second' in registry and 'X' not in registry\n"
    )
    site.dist("fake-reentrant", {"reentrant": "reentrant"}, {"reentrant": source})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert site.registry().get("Second").__name__ == "Second"


def test_strict_mode_makes_a_failure_an_error(site, monkeypatch):
    monkeypatch.setenv("RAMIE_STRICT_PLUGINS", "1")
    site.dist("fake-good", {"good": "good"}, {"good": GOOD.format(cls="Doubler")})
    site.dist("fake-bad", {"bad": "bad"}, {"bad": "raise ImportError('no such thing')"})
    reg = site.registry()
    with pytest.raises(PluginError) as info:
        reg.names()
    expected = failure(
        site, "bad", "bad", "fake-bad", "import", "ImportError: no such thing", strict=True
    )
    assert str(info.value) == expected
    assert isinstance(info.value.__cause__, ImportError)
    assert reg._status == "new"  # nothing half-loaded: the next use tries again
    with pytest.raises(PluginError):
        "Doubler" in reg  # noqa: B015
    monkeypatch.setenv("RAMIE_STRICT_PLUGINS", "0")
    with pytest.warns(PluginWarning):
        reg.reload()
    assert "Doubler" in reg


def test_disabling_autoload_loads_no_plugin(site, monkeypatch):
    monkeypatch.setenv("RAMIE_DISABLE_PLUGIN_AUTOLOAD", "1")
    site.dist("fake-good", {"good": "good"}, {"good": GOOD.format(cls="Doubler")})
    site.dist("fake-bad", {"bad": "bad"}, {"bad": "raise ImportError('no such thing')"})
    reg = site.registry()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "Doubler" not in reg
    assert site.module("good") not in sys.modules
    not_loaded = "not loaded (RAMIE_DISABLE_PLUGIN_AUTOLOAD is set)"
    assert [(p.name, p.error) for p in reg.plugins()] == [("bad", not_loaded), ("good", not_loaded)]
    with pytest.raises(UnknownLayerError, match=r"good from fake-good 1\.2\.3 \(not loaded \("):
        reg.get("Doubler")
    monkeypatch.delenv("RAMIE_DISABLE_PLUGIN_AUTOLOAD")
    with pytest.warns(PluginWarning):
        reg.reload()  # reads the environment again
    assert "Doubler" in reg


def test_two_plugins_with_one_layer_name_is_an_error_naming_both(site):
    site.dist("fake-one", {"one": "one"}, {"one": GOOD.format(cls="Same")})
    site.dist("fake-two", {"two": "two"}, {"two": GOOD.format(cls="Same")}, version="2.0")
    reg = site.registry()
    with pytest.raises(DuplicateLayerError) as info:
        reg.names()
    message = str(info.value)
    assert f"{site.module('one')}.Same from fake-one 1.2.3, and" in message
    assert f"{site.module('two')}.Same from fake-two 2.0." in message
    assert "pip uninstall" in message
    assert reg._status == "new"


@pytest.mark.parametrize("value", ["1", "true", "YES", " on "])
def test_flags_accept_common_spellings_of_on(site, monkeypatch, value):
    monkeypatch.setenv("RAMIE_DISABLE_PLUGIN_AUTOLOAD", value)
    site.dist("fake-good", {"good": "good"}, {"good": GOOD.format(cls="Doubler")})
    assert "Doubler" not in site.registry()


@pytest.mark.parametrize("value", ["", "0", "false", "No", "off"])
def test_flags_accept_common_spellings_of_off(site, monkeypatch, value):
    monkeypatch.setenv("RAMIE_DISABLE_PLUGIN_AUTOLOAD", value)
    site.dist("fake-good", {"good": "good"}, {"good": GOOD.format(cls="Doubler")})
    assert "Doubler" in site.registry()


def test_a_flag_that_is_not_on_or_off_is_an_error(site, monkeypatch):
    monkeypatch.setenv("RAMIE_STRICT_PLUGINS", "maybe")
    with pytest.raises(PluginError) as info:
        site.registry().names()
    assert str(info.value) == _plugins.BAD_ENV_FLAG.format(
        name="RAMIE_STRICT_PLUGINS", value="maybe"
    )


# -- protection of built-in and other distributions' names (issue 15) ----------------

HIJACK = """
    from ramie import core
    from ramie.layers import hookimpl

    class Linear(core.Module):
        pass

    @hookimpl
    def ramie_register_layers(registry):
        registry.unregister({name!r})
        registry.register(Linear)
"""


def test_a_plugin_cannot_remove_or_replace_a_builtin_layer(site):
    site.dist("fake-hijack", {"hijack": "hijack"}, {"hijack": HIJACK.format(name="Linear")})
    reg = site.registry()
    with pytest.raises(ProtectedLayerError) as info:
        reg.names()
    assert str(info.value) == _registry.PROTECTED_LAYER.format(
        plugin=Origin("fake-hijack", "1.2.3"),
        name="Linear",
        cls="ramie.layers._linear.Linear",
        owner=Origin("ramie-layers", layers.__version__),
    )
    assert "fake-hijack 1.2.3" in str(info.value) and "ramie-layers" in str(info.value)


def test_a_plugin_cannot_remove_another_plugins_layer(site):
    site.dist("fake-good", {"good": "good"}, {"good": GOOD.format(cls="Doubler")})
    site.dist("fake-thief", {"thief": "thief"}, {"thief": HIJACK.format(name="Doubler")})
    with pytest.raises(ProtectedLayerError, match=r"fake-thief 1.2.3 tried to unregister"):
        site.registry().names()


def test_own_layer_removed_by_its_plugin_and_user_code_may_still_unregister(site):
    own = GOOD.format(cls="Once") + "        registry.unregister('Once')\n"
    site.dist("fake-own", {"own": "own"}, {"own": own})
    reg = site.registry()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "Once" not in reg and "Linear" in reg
    assert reg.unregister("Linear") is layers.Linear  # the user's own decision


def test_a_plugin_that_raises_systemexit_is_reported_like_any_failure(site):
    source = "import argparse\nargparse.ArgumentParser().parse_args(['--nope'])\n"
    site.dist("fake-cli", {"cli": "cli"}, {"cli": source})
    site.dist("fake-good", {"good": "good"}, {"good": GOOD.format(cls="Doubler")})
    reg = site.registry()
    with pytest.warns(PluginWarning) as record:
        assert "Doubler" in reg
    assert [str(w.message) for w in record] == [
        failure(site, "cli", "cli", "fake-cli", "import", "SystemExit: 2")
    ]
    assert reg.plugins()[0].error == "failed to import: SystemExit: 2"
