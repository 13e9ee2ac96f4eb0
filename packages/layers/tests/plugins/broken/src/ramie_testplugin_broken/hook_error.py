"""A plug-in whose hook registers one layer, then fails: the layer must not stay."""

from ramie import core
from ramie.layers import hookimpl


class HalfRegistered(core.Module):
    """Registered before the hook fails; the registry must drop it again."""


@hookimpl
def ramie_register_layers(registry):
    registry.register(HalfRegistered)
    raise RuntimeError("ramie_testplugin_broken.hook_error fails on purpose")
