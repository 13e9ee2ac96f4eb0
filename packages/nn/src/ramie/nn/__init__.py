"""ramie.nn: the one-import facade over every ramie package.

``from ramie import nn`` gives the whole library under one name: ``nn.Module``,
``nn.Param``, ``nn.Rngs``, ``nn.split`` from ramie-core, and the public names
of ramie-layers, ramie-transforms, ramie-training and ramie-serialization as
they are installed. A name that belongs to a ramie package that is not
installed raises an ImportError that says which distribution to install.

>>> import jax.numpy as jnp
>>> from ramie import nn
>>> class Count(nn.Variable): pass
>>> class Counter(nn.Module):
...     def __init__(self):
...         self.count = Count(jnp.array(0))
...     def __call__(self):
...         self.count += 1
>>> c = Counter(); c()
>>> int(c.count.value)
1
"""

from ramie.core import *  # noqa: F403  (the facade re-exports core's flat namespace)
from ramie.core import __all__ as _core_all

from . import graph as graph  # NNX's `from flax.nnx import graph` spelling
from . import traversals as traversals  # and `flax.nnx.traversals`
from ._facade import PACKAGES as _PACKAGES
from ._facade import load as _load
from ._facade import missing_name as _missing_name

__version__ = _load(globals())
__all__ = sorted(
    {*_core_all, "graph", "traversals", *(n for p in _PACKAGES if p.loaded for n in p.names)}
)


def __getattr__(name: str):
    raise _missing_name(name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
