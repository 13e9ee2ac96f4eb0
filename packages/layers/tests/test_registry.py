"""The layer registry: register/get/in/names/origin, built-ins, duplicates, messages."""

import subprocess
import sys
import textwrap
import uuid

import jax.numpy as jnp
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import ramie.layers as layers
from ramie import core
from ramie.layers import (
    DuplicateLayerError,
    LayerRegistry,
    Origin,
    UnknownLayerError,
    _registry,
    registry,
)


class Scale(core.Module):
    def __init__(self, features: int):
        self.scale = core.Param(jnp.ones((features,)))


class Shift(core.Module):
    def __init__(self, features: int):
        self.shift = core.Param(jnp.zeros((features,)))


def fresh() -> LayerRegistry:
    """A registry whose entry-point group no distribution uses: built-ins only."""
    return LayerRegistry(group=f"ramie.layers.test-{uuid.uuid4().hex}")


def test_the_global_registry_uses_the_ramie_layers_group():
    assert isinstance(registry, LayerRegistry)
    assert registry.group == "ramie.layers"


def test_register_get_contains_names_origin():
    reg = fresh()
    assert reg.register(Scale) is Scale
    assert reg.register(Shift, name="Offset") is Shift
    assert reg.get("Scale") is Scale and reg.get("Offset") is Shift
    assert "Scale" in reg and "Offset" in reg
    assert "Shift" not in reg and 3 not in reg
    assert [n for n in reg.names() if n in ("Offset", "Scale")] == ["Offset", "Scale"]
    assert reg.names() == sorted(reg.names()) == list(reg)
    assert len(reg) == len(reg.names())
    assert reg.origin("Scale") == Origin(None, None)
    assert str(reg.origin("Scale")) == "no distribution (registered at run time)"


def test_register_works_as_a_decorator():
    reg = fresh()

    @reg.register
    class Decorated(core.Module):
        pass

    assert reg.get("Decorated") is Decorated


def test_registering_the_same_class_twice_is_a_no_op():
    reg = fresh()
    reg.register(Scale)
    reg.register(Scale)
    assert reg.get("Scale") is Scale


def test_two_classes_under_one_name_is_an_error_naming_both():
    reg = fresh()
    reg.register(Scale)
    with pytest.raises(DuplicateLayerError) as info:
        reg.register(Shift, name="Scale")
    message = str(info.value)
    assert message == _registry.DUPLICATE_LAYER.format(
        name="Scale",
        old=f"{__name__}.Scale",
        old_origin=Origin(None, None),
        new=f"{__name__}.Shift",
        new_origin=Origin(None, None),
    )
    assert f"{__name__}.Scale" in message and f"{__name__}.Shift" in message
    assert "unregister('Scale')" in message
    assert reg.get("Scale") is Scale  # the first one stays


def test_a_class_redefined_at_run_time_replaces_the_old_one():
    reg = fresh()

    def define():
        class Cell(core.Module):
            pass

        return Cell

    first, second = define(), define()
    assert first is not second
    reg.register(first)
    reg.register(second)  # same module and qualified name: a re-run notebook cell
    assert reg.get("Cell") is second


def test_unregister_removes_and_returns_the_class():
    reg = fresh()
    reg.register(Scale)
    assert reg.unregister("Scale") is Scale
    assert "Scale" not in reg
    reg.register(Shift, name="Scale")  # the name is free again
    assert reg.get("Scale") is Shift
    with pytest.raises(UnknownLayerError) as info:
        reg.unregister("Nope")
    assert str(info.value) == _registry.NOT_REGISTERED.format(name="Nope", names=", ".join(reg))


@pytest.mark.parametrize("bad", [Scale(2), int, "Scale", None])
def test_register_rejects_what_is_not_a_module_class(bad):
    with pytest.raises(TypeError) as info:
        fresh().register(bad)
    assert str(info.value) == _registry.NOT_A_LAYER_CLASS.format(found=repr(bad)[:120])


@pytest.mark.parametrize("bad", ["", " Scale", "Scale\n", 3])
def test_register_rejects_bad_names(bad):
    with pytest.raises(ValueError) as info:
        fresh().register(Scale, name=bad)
    assert str(info.value) == _registry.BAD_LAYER_NAME.format(found=bad, cls=f"{__name__}.Scale")


def test_unknown_names_list_close_matches_and_plugins():
    reg = fresh()
    reg.register(Scale)
    reg.register(Shift)
    with pytest.raises(UnknownLayerError) as info:
        reg.get("scale")
    message = str(info.value)
    assert message.startswith("No layer is registered under the name 'scale'. Did you mean 'Scale'")
    assert f"group {reg.group!r}" in message
    assert "Installed plug-ins: none found in the entry-point group" in message
    names = ", ".join(reg.names())
    assert f"Registered layers ({len(reg)}): {names}\n" in message
    with pytest.raises(UnknownLayerError) as info:
        reg.origin("Zzzzzz")
    assert "Did you mean" not in str(info.value)
    with pytest.raises(UnknownLayerError):
        reg.get(["not", "hashable"])


_SHARED = fresh()


@given(st.text(min_size=1).filter(lambda s: s == s.strip()))
def test_any_clean_name_round_trips(name):
    reg = _SHARED
    assume(name not in reg)  # a built-in's name ("GRUCell") is a duplicate, tested elsewhere
    reg.register(Scale, name=name)
    assert name in reg and reg.get(name) is Scale and reg.origin(name) == (None, None)
    assert reg.unregister(name) is Scale and name not in reg


def test_repr_does_not_trigger_discovery():
    reg = fresh()
    assert repr(reg) == f"<LayerRegistry group={reg.group!r}, not loaded yet>"
    assert reg._status == "new"
    reg.names()
    assert repr(reg) == f"<LayerRegistry group={reg.group!r}, {len(reg)} layers, 0 plug-ins>"


def test_public_module_classes_of_ramie_layers_are_registered_as_built_ins(monkeypatch):
    class TestOnlyLayer(core.Module):
        pass

    monkeypatch.setattr(layers, "TestOnlyLayer", TestOnlyLayer, raising=False)
    monkeypatch.setattr(layers, "_HiddenLayer", Scale, raising=False)
    monkeypatch.setattr(layers, "__all__", [*layers.__all__, "TestOnlyLayer"])
    reg = fresh()
    builtin = Origin("ramie-layers", layers.__version__)
    modules = [n for n in layers.__all__ if _is_module_class(getattr(layers, n))]
    assert "TestOnlyLayer" in modules
    for name in modules:
        assert reg.get(name) is getattr(layers, name), name
        assert reg.origin(name) == builtin, name
    for name in set(layers.__all__) - set(modules):  # functions, errors, registry, ...
        assert name not in reg, name
    assert "_HiddenLayer" not in reg and "Scale" not in reg  # not in __all__
    assert reg.names() == sorted(modules)


def _is_module_class(obj) -> bool:
    return isinstance(obj, type) and issubclass(obj, core.Module)


@pytest.mark.filterwarnings("ignore::ramie.layers.PluginWarning")  # the broken fixture
def test_every_builtin_layer_is_in_the_global_registry():
    builtin = Origin("ramie-layers", layers.__version__)
    for name in layers.__all__:
        if _is_module_class(getattr(layers, name)):
            assert registry.get(name) is getattr(layers, name), name
            assert registry.origin(name) == builtin, name
    assert "registry" not in registry and "build" not in registry


def test_a_builtin_name_cannot_be_taken(monkeypatch):
    monkeypatch.setattr(layers, "Scale", Scale, raising=False)
    monkeypatch.setattr(layers, "__all__", [*layers.__all__, "Scale"])
    reg = fresh()
    with pytest.raises(DuplicateLayerError) as info:
        reg.register(Shift, name="Scale")
    assert f"from ramie-layers {layers.__version__}, and" in str(info.value)


def test_import_discovers_nothing_first_use_does():
    script = textwrap.dedent(
        """
        import importlib.metadata as md
        import sys

        calls = []
        real = md.entry_points

        def spy(**kwargs):
            calls.append(kwargs)
            return real(**kwargs)

        md.entry_points = spy
        import ramie.layers

        assert calls == [], calls
        assert not [m for m in sys.modules if m.startswith("ramie_testplugin")]
        assert ramie.layers.registry._status == "new"
        "Anything" in ramie.layers.registry
        assert calls == [{"group": "ramie.layers"}], calls
        "Anything" in ramie.layers.registry
        assert len(calls) == 1, calls
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
