"""Plug-in discovery: entry points in the group ``ramie.layers``, called through pluggy.

A plug-in distribution declares a module in its ``pyproject.toml``::

    [project.entry-points."ramie.layers"]
    my_layers = "my_package.layers"

and that module implements the hook with ``@ramie.layers.hookimpl``::

    @hookimpl
    def ramie_register_layers(registry):
        registry.register(MyLayer)

``discover`` runs on a registry's first use: it registers the built-in layers,
then loads each entry point and calls its hook. A plug-in that fails to import
or to register becomes a ``PluginWarning`` (a ``RuntimeWarning``) and is
skipped, unless ``RAMIE_STRICT_PLUGINS=1``; ``RAMIE_DISABLE_PLUGIN_AUTOLOAD=1``
loads none. Both are read at discovery time.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from typing import TYPE_CHECKING, Any, NamedTuple

import pluggy

from ramie.core import Module, RamieError

from ._registry import DuplicateLayerError, ProtectedLayerError

if TYPE_CHECKING:
    from ._registry import LayerRegistry

PROJECT = "ramie.layers"
HOOK = "ramie_register_layers"
STRICT_ENV = "RAMIE_STRICT_PLUGINS"
DISABLE_ENV = "RAMIE_DISABLE_PLUGIN_AUTOLOAD"

#: The pluggy marker of ramie-layers' hook specifications (``ramie_register_layers``).
hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorate a plug-in's ``ramie_register_layers(registry)`` with this to implement the hook.
hookimpl = pluggy.HookimplMarker(PROJECT)


class PluginError(RamieError, RuntimeError):
    """A plug-in failed to load with ``RAMIE_STRICT_PLUGINS=1``, or a plug-in setting is bad."""


class PluginWarning(RuntimeWarning):
    """A plug-in failed to load and was skipped (the other layers still work)."""


class PluginInfo(NamedTuple):
    """One entry point of the group ``ramie.layers`` and what became of it.

    >>> info = PluginInfo("mine", "my_pkg.layers", "my-dist", "1.0", ("Scale",), None)
    >>> info.error is None and info.layers
    ('Scale',)
    """

    name: str  # the entry point's name
    value: str  # what it points at: "package.module" (or "package.module:object")
    distribution: str | None
    version: str | None
    layers: tuple[str, ...]  # the layer names its hook registered
    error: str | None  # why its layers are not available; None when it loaded


PLUGIN_FAILED = (
    "ramie.layers: the plug-in {name!r} (entry point '{name} = {value}' of the distribution "
    "{distribution}) failed to {stage}: {error}. {advice}"
)

SKIPPED_ADVICE = (
    "It was skipped: its layers are not available, the other layers are. Fix or uninstall "
    "it (pip uninstall {dist_name}), set RAMIE_DISABLE_PLUGIN_AUTOLOAD=1 to load no "
    "plug-ins, or set RAMIE_STRICT_PLUGINS=1 to make this an error."
)

STRICT_ADVICE = (
    "RAMIE_STRICT_PLUGINS=1 makes this an error. Fix or uninstall the plug-in (pip "
    "uninstall {dist_name}), or unset RAMIE_STRICT_PLUGINS to skip it with a warning."
)

NO_HOOK = (
    "{plugin} has no ramie_register_layers function marked with @ramie.layers.hookimpl"
    "{hint}, so it cannot register any layer"
)

UNMARKED_HOOK_HINT = " (it defines ramie_register_layers, but without the decorator)"

BAD_ENV_FLAG = (
    "{name}={value!r} is not understood: set it to 1 (on) or 0 (off); true/false, yes/no "
    "and on/off work too, and unset or empty means off."
)

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


class _Specs:
    """The hooks a ramie.layers plug-in may implement."""

    @hookspec(historic=True)
    def ramie_register_layers(self, registry: LayerRegistry) -> None:
        """Register this plug-in's layers: ``registry.register(cls, name=None)`` for each.

        Historic: a plug-in is called as soon as it is registered, one at a
        time, so each registration is attributed to its own distribution.
        """


class _BuiltinLayers:
    """The built-in "plug-in": every public Module subclass of ``ramie.layers``."""

    @hookimpl
    def ramie_register_layers(self, registry: LayerRegistry) -> None:
        import ramie.layers as layers  # here, not at the top: ramie.layers imports us

        for name in layers.__all__:
            obj = getattr(layers, name)
            if isinstance(obj, type) and issubclass(obj, Module):
                registry.register(obj, name=name)


def env_flag(name: str) -> bool:
    """Read an on/off environment variable (``1``/``0``, ``true``/``false``, ...)."""
    value = os.environ.get(name, "")
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise PluginError(BAD_ENV_FLAG.format(name=name, value=value))


def _distribution(entry_point: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return None, None
    return dist.name, dist.version


def discover(registry: LayerRegistry) -> bool:
    """Fill ``registry``: built-in layers, then plug-ins. Returns whether autoload was off."""
    import ramie.layers as layers

    strict = env_flag(STRICT_ENV)
    disabled = env_flag(DISABLE_ENV)
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(_Specs)
    manager.hook.ramie_register_layers.call_historic(kwargs={"registry": registry})
    with registry._registering("ramie-layers", layers.__version__):
        manager.register(_BuiltinLayers(), name="ramie-layers")
    found = importlib.metadata.entry_points(group=registry.group)
    for entry_point in sorted(found, key=lambda ep: (*map(str, _distribution(ep)), ep.name)):
        distribution, version = _distribution(entry_point)
        info = PluginInfo(entry_point.name, entry_point.value, distribution, version, (), None)
        if disabled:
            info = info._replace(error=f"not loaded ({DISABLE_ENV} is set)")
        else:
            info = _load(manager, registry, entry_point, info, strict)
        registry._plugins.append(info)
    return disabled


def _load(
    manager: pluggy.PluginManager,
    registry: LayerRegistry,
    entry_point: importlib.metadata.EntryPoint,
    info: PluginInfo,
    strict: bool,
) -> PluginInfo:
    """Import one entry point and call its hook; a failure warns (or raises when strict)."""
    stage, plugin = "import", None
    try:
        with registry._registering(info.distribution or "?", info.version) as added:
            plugin = entry_point.load()
            stage = "register its layers"
            manager.register(plugin, name=f"{info.distribution}:{info.name}")
            if not manager.get_hookcallers(plugin):
                hint = UNMARKED_HOOK_HINT if hasattr(plugin, HOOK) else ""
                raise PluginError(NO_HOOK.format(plugin=_describe_object(plugin), hint=hint))
    except (DuplicateLayerError, ProtectedLayerError):
        raise  # two layers under one name, or one taken from its owner, is always an error
    except (Exception, SystemExit) as error:  # SystemExit: e.g. argparse run at import
        if plugin is not None and manager.is_registered(plugin):
            manager.unregister(plugin)
        message = _failure_message(info, stage, error, strict)
        if strict:
            raise PluginError(message) from error
        warnings.warn(message, PluginWarning, stacklevel=2)
        return info._replace(error=f"failed to {stage}: {_error_text(error)}")
    return info._replace(layers=tuple(added))


def _describe_object(plugin: Any) -> str:
    name = getattr(plugin, "__name__", None)
    return f"the module {name}" if name else repr(plugin)[:80]


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _failure_message(info: PluginInfo, stage: str, error: BaseException, strict: bool) -> str:
    dist_name = info.distribution or "<the distribution that provides it>"
    advice = (STRICT_ADVICE if strict else SKIPPED_ADVICE).format(dist_name=dist_name)
    distribution = f"{info.distribution} {info.version}" if info.distribution else "unknown"
    return PLUGIN_FAILED.format(
        name=info.name,
        value=info.value,
        distribution=distribution,
        stage=stage,
        error=_error_text(error),
        advice=advice,
    )


def describe(plugins: list[PluginInfo], disabled: bool, group: str) -> str:
    """One line about every plug-in found, for error messages."""
    if not plugins:
        off = f" ({DISABLE_ENV} is set)" if disabled else ""
        return f"none found in the entry-point group {group!r}{off}"
    parts = []
    for info in plugins:
        what = info.error or f"layers {', '.join(info.layers) or '(none)'}"
        parts.append(f"{info.name} from {info.distribution} {info.version} ({what})")
    return "; ".join(parts)
