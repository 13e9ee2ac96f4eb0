"""``ramie.transforms``: JAX transforms that take, return and update ramie objects.

Each transform accepts Modules, Rngs, Variables (and any nesting of them with
arrays) and propagates every mutation made inside back to the caller's
objects, keeping shared references shared.

>>> import jax.numpy as jnp
>>> from ramie import core
>>> from ramie.transforms import jit
>>> class Count(core.Module):
...     def __init__(self):
...         self.n = core.Variable(jnp.array(0))
>>> @jit
... def step(c):
...     c.n.value += 1
>>> c = Count()
>>> step(c); step(c)
>>> int(c.n.value)
2
"""

from importlib.metadata import version as _version

from ._autodiff import DiffState, grad, jvp, value_and_grad, vjp
from ._axes import Carry, StateAxes
from ._cache import clear_caches
from ._control import cond, eval_shape, remat, switch
from ._custom_vjp import custom_vjp
from ._errors import CarryError, StructureChangedError, TransformArgumentError
from ._inspection import checkify, make_jaxpr
from ._jit import jit
from ._jit_aot import cached_partial, jit_partial
from ._loops import fori_loop, while_loop
from ._partition import PARTITION_NAME
from ._pmap import pmap
from ._scan import scan
from ._shard_map import shard_map
from ._vmap import split_rngs, vmap

__all__ = [
    "PARTITION_NAME",
    "Carry",
    "CarryError",
    "DiffState",
    "StateAxes",
    "StructureChangedError",
    "TransformArgumentError",
    "cached_partial",
    "checkify",
    "clear_caches",
    "cond",
    "custom_vjp",
    "eval_shape",
    "fori_loop",
    "grad",
    "jit",
    "jit_partial",
    "jvp",
    "make_jaxpr",
    "pmap",
    "remat",
    "scan",
    "shard_map",
    "split_rngs",
    "switch",
    "value_and_grad",
    "vjp",
    "vmap",
    "while_loop",
]
__version__: str = _version("ramie-transforms")
