"""The layer registry: layer names -> Module classes, with where each came from.

``registry`` (the one ``ramie.layers.build`` uses) knows every built-in layer
and every layer that plug-in distributions register. It fills itself lazily:
nothing is discovered when ``ramie.layers`` is imported, only on the first
call that needs the contents (``get``, ``in``, ``names``, ``register``, ...).
Discovery itself lives in ``_plugins.py``.
"""

from __future__ import annotations

import contextlib
import difflib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from ramie.core import Module, RamieError

if TYPE_CHECKING:
    from ._plugins import PluginInfo

GROUP = "ramie.layers"  # the entry-point group of ramie.layers.registry
M = TypeVar("M", bound=type[Module])


class UnknownLayerError(RamieError, LookupError):
    """No layer is registered under the requested name."""


class DuplicateLayerError(RamieError, ValueError):
    """Two different classes were registered under one layer name."""


class ProtectedLayerError(RamieError, PermissionError):
    """A plug-in tried to remove or replace a layer that another distribution registered."""


class Origin(NamedTuple):
    """Where a registered layer came from: a distribution and its version.

    Both are None for a layer registered at run time (``registry.register``
    called by a script rather than by a plug-in's hook).

    >>> Origin("ramie-layers", "0.1.0").distribution  # what registry.origin("Linear") gives
    'ramie-layers'
    >>> str(Origin(None, None))
    'no distribution (registered at run time)'
    """

    distribution: str | None
    version: str | None

    def __str__(self) -> str:
        if self.distribution is None:
            return "no distribution (registered at run time)"
        return f"{self.distribution} {self.version}"


RUNTIME = Origin(None, None)

UNKNOWN_LAYER = (
    "No layer is registered under the name {name!r}.{suggestion}\n"
    "Registered layers ({count}): {names}\n"
    "Installed plug-ins: {plugins}\n"
    "Fix the name, register your class first (ramie.layers.registry.register(MyLayer)), or "
    "install the distribution that provides the layer (a plug-in declares it under the "
    "entry-point group {group!r})."
)

DUPLICATE_LAYER = (
    "Two layers are registered under the name {name!r}: {old} from {old_origin}, and "
    "{new} from {new_origin}. A name must identify one class. If both come from installed "
    "distributions, uninstall one of them (pip uninstall <distribution>) or ask its "
    "maintainers to register the layer under another name; in your own code, pass another "
    "name (registry.register(cls, name='...')) or call registry.unregister({name!r}) first."
)

PROTECTED_LAYER = (
    "The plug-in distribution {plugin} tried to unregister the layer {name!r} ({cls}), which "
    "{owner} registered. A plug-in may only remove layers it registered itself: built-in "
    "names and names owned by another distribution cannot be removed or replaced, because "
    "every build() would silently get another class. Register the plug-in's layer under a "
    "name of its own (registry.register(cls, name='...')), or ask the user to call "
    "registry.unregister({name!r}) in their own code if replacing it is what they want."
)

NOT_A_LAYER_CLASS = (
    "registry.register() expects a subclass of ramie.core.Module (the class itself, not an "
    "instance), but got {found}. Register the class: registry.register(MyLayer)."
)

BAD_LAYER_NAME = (
    "registry.register(): a layer name must be a non-empty string without surrounding "
    "spaces, but got {found!r} for {cls}. Omit name= to use the class name."
)

NOT_REGISTERED = (
    "registry.unregister(): no layer is registered under the name {name!r}, so there is "
    "nothing to remove. Registered layers: {names}"
)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class LayerRegistry:
    """Layer names mapped to ``Module`` classes, filled from built-ins and plug-ins.

    ``group`` is the entry-point group plug-ins are found in (``"ramie.layers"``
    for ``ramie.layers.registry``; a registry of your own may use another).

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.layers import LayerRegistry
    >>> class Scale(core.Module):
    ...     def __init__(self, features: int):
    ...         self.scale = core.Param(jnp.ones((features,)))
    >>> registry = LayerRegistry(group="ramie.layers.doctest")
    >>> registry.register(Scale) is Scale
    True
    >>> "Scale" in registry, registry.get("Scale") is Scale, registry.origin("Scale")
    (True, True, Origin(distribution=None, version=None))
    """

    def __init__(self, group: str = GROUP) -> None:
        self.group = group
        self._lock = threading.RLock()
        self._forget()

    def _forget(self) -> None:
        self._layers: dict[str, type[Module]] = {}
        self._origins: dict[str, Origin] = {}
        self._plugins: list[PluginInfo] = []
        self._autoload_disabled = False
        self._status = "new"  # -> "loading" -> "loaded"
        self._current: Origin | None = None  # set while a hook registers layers
        self._added: list[str] | None = None  # names the running hook has registered

    # -- discovery --------------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        if self._status == "loaded":
            return
        with self._lock:
            if self._status != "new":  # loaded by another thread, or a hook asking
                return
            from . import _plugins  # here, not at the top: _plugins imports this module

            self._status = "loading"
            try:
                self._autoload_disabled = _plugins.discover(self)
            except BaseException:
                self._forget()  # the next use tries again (and fails the same way)
                raise
            self._status = "loaded"

    def reload(self) -> None:
        """Forget every layer and plug-in, then discover them again now.

        Layers registered at run time are dropped; the environment variables
        ``RAMIE_STRICT_PLUGINS`` and ``RAMIE_DISABLE_PLUGIN_AUTOLOAD`` are read
        again. Useful after installing a plug-in into a running session.
        """
        with self._lock:
            self._forget()
            self._ensure_loaded()

    @contextlib.contextmanager
    def _registering(self, distribution: str, version: str | None) -> Iterator[list[str]]:
        """Attribute registrations to a distribution; undo them all if the block fails."""
        self._current, self._added = Origin(distribution, version), []
        added = self._added
        try:
            yield added
        except BaseException:
            for name in added:
                self._layers.pop(name, None)
                self._origins.pop(name, None)
            raise
        finally:
            self._current, self._added = None, None

    # -- the mapping ------------------------------------------------------------------

    def register(self, cls: M, name: str | None = None) -> M:
        """Register ``cls`` under ``name`` (default: its class name) and return it.

        Works as a decorator too (``@registry.register``). Registering the
        same class again under the same name does nothing; a different class
        under a taken name is a ``DuplicateLayerError`` naming both origins
        (except that a class redefined at run time in the same module with the
        same qualified name replaces the old one, so re-running a notebook
        cell works).
        """
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            raise TypeError(NOT_A_LAYER_CLASS.format(found=repr(cls)[:120]))
        name = cls.__name__ if name is None else name
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(BAD_LAYER_NAME.format(found=name, cls=_qualname(cls)))
        self._ensure_loaded()
        origin = self._current or RUNTIME
        old = self._layers.get(name)
        if old is cls:
            return cls
        if old is not None and not self._redefined(old, cls, name, origin):
            raise DuplicateLayerError(
                DUPLICATE_LAYER.format(
                    name=name,
                    old=_qualname(old),
                    old_origin=self._origins[name],
                    new=_qualname(cls),
                    new_origin=origin,
                )
            )
        self._layers[name] = cls
        self._origins[name] = origin
        if self._added is not None:
            self._added.append(name)
        return cls

    def _redefined(self, old: type, new: type, name: str, origin: Origin) -> bool:
        return (
            origin == RUNTIME
            and self._origins[name] == RUNTIME
            and _qualname(old) == _qualname(new)
        )

    def unregister(self, name: str) -> type[Module]:
        """Remove the layer registered under ``name`` and return its class.

        Your own code may remove any layer. A plug-in's hook may only remove
        the layers its own distribution registered: removing a built-in layer,
        or another distribution's, raises ``ProtectedLayerError``.
        """
        self._ensure_loaded()
        if name not in self._layers:
            raise UnknownLayerError(NOT_REGISTERED.format(name=name, names=self._names_text()))
        owner = self._origins[name]
        if self._current is not None and owner.distribution != self._current.distribution:
            raise ProtectedLayerError(
                PROTECTED_LAYER.format(
                    plugin=self._current,
                    name=name,
                    cls=_qualname(self._layers[name]),
                    owner=owner,
                )
            )
        self._origins.pop(name)
        return self._layers.pop(name)

    def get(self, name: str) -> type[Module]:
        """The class registered under ``name``; an error with close matches if none is."""
        self._ensure_loaded()
        try:
            return self._layers[name]
        except (KeyError, TypeError):
            raise UnknownLayerError(self._unknown_message(name)) from None

    def origin(self, name: str) -> Origin:
        """Which distribution (and version) registered ``name``: ``Origin(dist, version)``."""
        self._ensure_loaded()
        try:
            return self._origins[name]
        except (KeyError, TypeError):
            raise UnknownLayerError(self._unknown_message(name)) from None

    def names(self) -> list[str]:
        """Every registered layer name, sorted."""
        self._ensure_loaded()
        return sorted(self._layers)

    def plugins(self) -> tuple[PluginInfo, ...]:
        """Every plug-in entry point found, loaded or not (``PluginInfo.error`` says why not)."""
        self._ensure_loaded()
        return tuple(self._plugins)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return isinstance(name, str) and name in self._layers

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._layers)

    def __repr__(self) -> str:  # never triggers discovery (debuggers call repr)
        if self._status != "loaded":
            return f"<LayerRegistry group={self.group!r}, not loaded yet>"
        return (
            f"<LayerRegistry group={self.group!r}, {len(self._layers)} layers, "
            f"{len(self._plugins)} plug-ins>"
        )

    # -- messages ---------------------------------------------------------------------

    def _names_text(self) -> str:
        return ", ".join(sorted(self._layers)) or "none"

    def _unknown_message(self, name: object) -> str:
        from . import _plugins

        matches = []
        if isinstance(name, str):
            matches = difflib.get_close_matches(name, list(self._layers), n=3, cutoff=0.6)
        suggestion = f" Did you mean {', '.join(map(repr, matches))}?" if matches else ""
        return UNKNOWN_LAYER.format(
            name=name,
            suggestion=suggestion,
            count=len(self._layers),
            names=self._names_text(),
            plugins=_plugins.describe(self._plugins, self._autoload_disabled, self.group),
            group=self.group,
        )


#: The registry of layers by name: the built-in ones and those of installed plug-ins.
registry = LayerRegistry()
