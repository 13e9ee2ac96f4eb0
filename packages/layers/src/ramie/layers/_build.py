"""``build``: make a layer (and the layers nested in it) from a plain dict config."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from ramie.core import Module, RamieError, Rngs

from . import _registry
from ._activations import ACTIVATIONS, Activation
from ._registry import LayerRegistry, UnknownLayerError

_P = inspect.Parameter
_POSITIONAL = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)


class LayerConfigError(RamieError, ValueError):
    """A config given to ``build`` does not fit the layer it names."""


NOT_A_CONFIG = (
    "build(): {path} must be a dict such as {{'type': 'Linear', 'in_features': 3, "
    "'out_features': 4}}, but it is {found}."
)

NO_TYPE = (
    "build(): {path} has no 'type' key, so there is no telling which layer to build (its "
    "keys: {keys}). Add the registered layer name: {{'type': 'Linear', ...}}; "
    "ramie.layers.registry.names() lists them."
)

BAD_TYPE = (
    "build(): {path}['type'] must be a registered layer name (a string such as 'Linear'), "
    "but it is {found}. ramie.layers.registry.names() lists the names."
)

UNKNOWN_KEYS = (
    "build(): {path} gives {type!r} ({cls}) the key(s) {keys}, which it does not accept.{hint} "
    "Its parameters: {accepted}. Remove or rename the key(s)."
)

MISSING_KEYS = (
    "build(): {path} lacks the required key(s) {keys} of {type!r} ({cls}). Its parameters: "
    "{accepted}. Add them to the config."
)

RNGS_IN_CONFIG = (
    "build(): {path} has an 'rngs' key, but random streams are not part of a config: pass "
    "them once to build(config, rngs=...) and every layer that takes rngs gets them. "
    "Remove the 'rngs' key."
)

VARARGS_NOT_A_LIST = (
    "build(): {path}[{name!r}] must be a list of configs (or values) that {type!r} takes as "
    "*{name}, but it is {found}. Write it as a list: {{'type': {type!r}, {name!r}: [...]}}."
)

BAD_RNGS = (
    "build(rngs=...) expects a ramie.core.Rngs, an int seed or a PRNG key, but got {found}. "
    "For example: build(config, rngs=ramie.core.Rngs(0)) or build(config, rngs=0)."
)

BAD_LAYER_ENTRY = (
    "build(): {path} is the string {found!r}, which is neither a layer config nor an "
    "activation name.{hint} An entry of {type!r} must be a config such as {{'type': "
    "'Linear', ...}} or the name of an activation: {names}."
)

ACTIVATION_KEYS = (
    "build(): {path} names the activation {name!r}, which takes no keyword argument(s) "
    "{keys}. Its keyword arguments: {accepted}."
)

LOOKUP_NOTE = "looked up by ramie.layers.build() for {path}['type']"

BUILD_NOTE = "raised by {type}(...) while ramie.layers.build() built {path}"


def build(
    config: Mapping[str, Any],
    *,
    rngs: Rngs | int | Any,
    registry: LayerRegistry | None = None,
) -> Module:
    """Make the layer ``config["type"]`` names, with the other keys as its arguments.

    Any value that is itself a dict with a ``"type"`` key (also inside lists,
    tuples and dicts) is built first, so a ``Sequential`` of configs builds
    its layers. ``rngs`` (a ``ramie.core.Rngs``, or an int seed or PRNG key
    that becomes ``Rngs(rngs)``) is given to every constructor that has an
    ``rngs`` parameter; all layers draw from the same ``Rngs``, so each gets
    fresh keys. A constructor with ``*args`` (``Sequential(*layers)``) gets
    the list under that parameter's name positionally. Looks names up in
    ``registry`` (default: ``ramie.layers.registry``).

    Args:
        config: ``{"type": name, **arguments}``; nested configs are built first.
        rngs: an ``Rngs``, or an int seed or PRNG key that becomes ``Rngs(rngs)``.
        registry: where names are looked up (default: ``ramie.layers.registry``).

    Returns:
        The layer, a ``Module``.

    Raises:
        UnknownLayerError: no layer is registered under a ``"type"`` (close names listed).
        LayerConfigError: a config is not a dict, lacks ``"type"``, or has keys the
            constructor does not take or misses ones it needs (named, with its parameters).
        TypeError: ``rngs`` is None or not a seed, key or ``Rngs``.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.layers import LayerRegistry, build
    >>> class Scale(core.Module):
    ...     def __init__(self, features: int, *, rngs: core.Rngs):
    ...         self.scale = core.Param(jnp.ones((features,)))
    >>> registry = LayerRegistry(group="ramie.layers.doctest")
    >>> _ = registry.register(Scale)
    >>> build({"type": "Scale", "features": 3}, rngs=0, registry=registry).scale.value.shape
    (3,)
    """
    if rngs is None:  # Rngs(None) would be an Rngs without streams: fail here, clearly
        raise TypeError(BAD_RNGS.format(found="None"))
    if not isinstance(rngs, Rngs):
        try:
            rngs = Rngs(rngs)
        except (TypeError, ValueError):
            raise TypeError(BAD_RNGS.format(found=repr(rngs)[:80])) from None
    return _build_layer(config, rngs, registry or _registry.registry, "config")


def _build_value(value: Any, rngs: Rngs, registry: LayerRegistry, path: str) -> Any:
    """Build every config inside ``value`` (a dict with "type", or one in a container)."""
    if isinstance(value, Mapping) and "type" in value:
        return _build_layer(value, rngs, registry, path)
    if isinstance(value, Mapping):
        return {k: _build_value(v, rngs, registry, f"{path}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list) or type(value) is tuple:
        built = [_build_value(v, rngs, registry, f"{path}[{i}]") for i, v in enumerate(value)]
        return built if isinstance(value, list) else tuple(built)
    return value


def _build_layer(config: Any, rngs: Rngs, registry: LayerRegistry, path: str) -> Module:
    if not isinstance(config, Mapping):
        raise LayerConfigError(NOT_A_CONFIG.format(path=path, found=_found(config)))
    if "type" not in config:
        keys = ", ".join(map(repr, config)) or "none"
        raise LayerConfigError(NO_TYPE.format(path=path, keys=keys))
    name = config["type"]
    if not isinstance(name, str):
        raise LayerConfigError(BAD_TYPE.format(path=path, found=_found(name)))
    if "rngs" in config:
        raise LayerConfigError(RNGS_IN_CONFIG.format(path=path))
    if name in ACTIVATIONS and name not in registry:
        return _activation(name, {k: v for k, v in config.items() if k != "type"}, path)
    try:
        cls = registry.get(name)
    except UnknownLayerError as error:
        error.add_note(LOOKUP_NOTE.format(path=path))
        raise
    kwargs = {
        key: _build_value(value, rngs, registry, f"{path}[{key!r}]")
        for key, value in config.items()
        if key != "type"
    }
    args, kwargs = _arguments(cls, name, kwargs, rngs, path)
    try:
        return cls(*args, **kwargs)
    except Exception as error:
        error.add_note(BUILD_NOTE.format(type=name, path=path))
        raise


def _arguments(
    cls: type, name: str, kwargs: dict[str, Any], rngs: Rngs, path: str
) -> tuple[list[Any], dict[str, Any]]:
    """Split a config's values into the positional and keyword arguments of ``cls``."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # no signature to check against: pass the keys as given
        return [], kwargs
    var_positional = next((p for p in params.values() if p.kind is _P.VAR_POSITIONAL), None)
    takes_any_key = any(p.kind is _P.VAR_KEYWORD for p in params.values())
    named = {k: p for k, p in params.items() if p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)}
    context = {"path": path, "type": name, "cls": cls.__qualname__, "accepted": _accepted(params)}
    unknown = [k for k in kwargs if k not in named and not _is_star(k, var_positional)]
    if unknown and not takes_any_key:
        raise LayerConfigError(
            UNKNOWN_KEYS.format(keys=_listing(unknown), hint=_hint(unknown, named), **context)
        )
    if "rngs" in named:
        kwargs["rngs"] = rngs
    missing = [
        k
        for k, p in named.items()
        if p.default is _P.empty and k not in kwargs and p.kind is not _P.VAR_POSITIONAL
    ]
    if missing:
        raise LayerConfigError(MISSING_KEYS.format(keys=_listing(missing), **context))
    star: list[Any] = []
    if var_positional is not None and var_positional.name in kwargs:
        star = kwargs.pop(var_positional.name)
        if not isinstance(star, (list, tuple)):
            raise LayerConfigError(
                VARARGS_NOT_A_LIST.format(
                    path=path, name=var_positional.name, type=name, found=_found(star)
                )
            )
        where = f"{path}[{var_positional.name!r}]"
        star = [_named_entry(v, f"{where}[{i}]", name) for i, v in enumerate(star)]
    # Parameters before *args, and positional-only ones, can only be passed by position.
    positional = [p for p in named.values() if p.kind in _POSITIONAL]
    if star:
        last = len(positional)
    else:
        only = [i for i, p in enumerate(positional) if p.kind is _P.POSITIONAL_ONLY]
        last = only[-1] + 1 if only else 0
    args = [kwargs.pop(p.name, p.default) for p in positional[:last]]
    return [*args, *star], kwargs


def _is_star(key: str, var_positional: inspect.Parameter | None) -> bool:
    return var_positional is not None and key == var_positional.name


def _accepted(params: Mapping[str, inspect.Parameter]) -> str:
    shown = []
    for key, p in params.items():
        if key == "rngs" and p.kind is not _P.VAR_POSITIONAL:
            continue  # build() passes it
        if p.kind is _P.VAR_POSITIONAL:
            shown.append(f"{key} (a list)")
        elif p.kind is _P.VAR_KEYWORD:
            shown.append(f"any other key (**{key})")
        elif p.default is _P.empty:
            shown.append(f"{key} (required)")
        else:
            shown.append(f"{key}={p.default!r}")
    return ", ".join(shown) or "none"


def _hint(unknown: list[str], named: Mapping[str, inspect.Parameter]) -> str:
    candidates = [k for k in named if k != "rngs"]
    hints = [
        f"{match[0]!r} for {key!r}"
        for key in unknown
        if (match := difflib.get_close_matches(key, candidates, n=1, cutoff=0.6))
    ]
    return f" Did you mean {', '.join(hints)}?" if hints else ""


def _listing(keys: list[str]) -> str:
    return ", ".join(map(repr, keys))


def _found(value: Any) -> str:
    return f"{type(value).__name__} {repr(value)[:80]}"


def _activation(name: str, kwargs: dict[str, Any], path: str) -> Activation:
    """The activation ``name`` with ``kwargs``, checked against its signature now."""
    params = inspect.signature(ACTIVATIONS[name]).parameters
    keywords = [k for k, p in list(params.items())[1:] if p.kind is not _P.VAR_POSITIONAL]
    unknown = [k for k in kwargs if k not in keywords]
    if unknown:
        accepted = ", ".join(keywords) or "none"
        raise LayerConfigError(
            ACTIVATION_KEYS.format(path=path, name=name, keys=_listing(unknown), accepted=accepted)
        )
    return Activation(name, tuple(sorted(kwargs.items())))


def _named_entry(value: Any, path: str, type_name: str) -> Any:
    """A string in a layer list is an activation name (made an Activation) or an error."""
    if not isinstance(value, str):
        return value
    if value in ACTIVATIONS:
        return Activation(value)
    match = difflib.get_close_matches(value, list(ACTIVATIONS), n=1, cutoff=0.6)
    raise LayerConfigError(
        BAD_LAYER_ENTRY.format(
            path=path,
            found=value,
            type=type_name,
            hint=f" Did you mean {match[0]!r}?" if match else "",
            names=", ".join(sorted(ACTIVATIONS)),
        )
    )
