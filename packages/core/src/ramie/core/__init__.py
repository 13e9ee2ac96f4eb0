"""ramie.core: Variables, Rngs, Module, the functional API, State, filters, display.

>>> import jax, jax.numpy as jnp
>>> from ramie import core
>>> class Linear(core.Module):
...     def __init__(self, din, dout, *, rngs):
...         self.w = core.Param(jax.random.uniform(rngs.params(), (din, dout)))
...         self.b = core.Param(jnp.zeros((dout,)))
...     def __call__(self, x):
...         return x @ self.w + self.b
>>> model = Linear(2, 3, rngs=core.Rngs(0))
>>> graphdef, state = core.split(model)
>>> core.merge(graphdef, state)(jnp.ones((1, 2))).shape
(1, 3)
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from ._api import clone, graphdef, merge, pop, split, state, update
from ._diff import Change
from ._diff import changes as graph_changes
from ._display import display, render, summary, tabulate
from ._errors import (
    CapturedMutationError,
    FilterError,
    GraphError,
    RamieError,
    RngStreamError,
    StateLeafError,
    TraceLeakError,
    UnclassifiableAttributeError,
    format_path,
    format_paths,
)
from ._filters import All, Everything, Filter, Not, Nothing, OfType, PathContains, to_predicate
from ._filters import Any_ as Any
from ._functional import Functional, functional
from ._graph import FlatGraph, GraphDef, flatten, unflatten
from ._module import Module
from ._rngs import RngCount, RngKey, Rngs, RngState, RngStream
from ._state import State, replace_by_pure_dict, to_pure_dict
from ._tracking import Dict, Frame, List, transform_frame
from ._tracking import version as structure_version
from ._variables import BatchStat, Cache, Intermediate, Param, Variable

try:
    __version__ = _version("ramie-core")
except _PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "All",
    "Any",
    "BatchStat",
    "Cache",
    "Change",
    "CapturedMutationError",
    "Dict",
    "Everything",
    "Filter",
    "FilterError",
    "FlatGraph",
    "Frame",
    "Functional",
    "GraphDef",
    "GraphError",
    "Intermediate",
    "List",
    "Module",
    "Not",
    "Nothing",
    "OfType",
    "Param",
    "PathContains",
    "RamieError",
    "RngCount",
    "RngKey",
    "RngState",
    "RngStream",
    "RngStreamError",
    "Rngs",
    "State",
    "StateLeafError",
    "TraceLeakError",
    "UnclassifiableAttributeError",
    "Variable",
    "clone",
    "display",
    "flatten",
    "format_path",
    "format_paths",
    "functional",
    "graph_changes",
    "graphdef",
    "merge",
    "pop",
    "render",
    "replace_by_pure_dict",
    "split",
    "state",
    "structure_version",
    "summary",
    "tabulate",
    "to_predicate",
    "to_pure_dict",
    "transform_frame",
    "unflatten",
    "update",
]
