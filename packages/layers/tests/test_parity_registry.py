"""Registry protection and SystemExit in plug-ins (issue 15), with distributions made on the fly."""

import sys
import warnings
from pathlib import Path

import pytest

from ramie import layers
from ramie.layers import Origin, PluginWarning, ProtectedLayerError, _registry

sys.path.insert(0, str(Path(__file__).parent))
from test_registry_plugins import GOOD, failure, site  # noqa: E402, F401  (site is a fixture)

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
