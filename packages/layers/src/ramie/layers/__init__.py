"""``ramie.layers`` (ramie-layers): a placeholder.

The issue that brings this package's code has not landed yet, so it exports
nothing. It exists so that the distribution builds, installs and can be
depended upon.
"""

from importlib.metadata import version as _version

__all__: list[str] = []
__version__: str = _version("ramie-layers")

# --- the plug-in registry and build() (keep this block together, at the end) ---
from ._build import LayerConfigError, build  # noqa: E402
from ._plugins import PluginError, PluginInfo, PluginWarning, hookimpl, hookspec  # noqa: E402
from ._registry import (  # noqa: E402
    DuplicateLayerError,
    LayerRegistry,
    Origin,
    UnknownLayerError,
    registry,
)

__all__ += [
    "DuplicateLayerError",
    "LayerConfigError",
    "LayerRegistry",
    "Origin",
    "PluginError",
    "PluginInfo",
    "PluginWarning",
    "UnknownLayerError",
    "build",
    "hookimpl",
    "hookspec",
    "registry",
]
