"""``ramie.serialization`` (ramie-serialization): a placeholder.

The issue that brings this package's code has not landed yet, so it exports
nothing. It exists so that the distribution builds, installs and can be
depended upon.
"""

from importlib.metadata import version as _version

__all__: list[str] = []
__version__: str = _version("ramie-serialization")
