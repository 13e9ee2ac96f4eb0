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

Authors of transforms over ramie objects: see ``ramie.core.extend``.

The modules are layered: each imports only modules listed before it in
``_LAYERS`` (at the top of the file, never inside a function), so each can be
read knowing only the ones above it in that list. Lower layers print through
hooks (``_reprs``) that ``_display``, near the top, fills in.
``tests/test_layers.py`` checks this.
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from . import extend as extend  # the seam for transform authors (not in __all__)
from . import traversals as traversals  # NNX's flax.nnx.traversals (not in __all__)
from ._api import clone, graphdef, merge, pop, split, state, update
from ._caches import clear_caches
from ._capture import ClosureReadWarning
from ._capture import closure_read_hook as closure_read_hook  # for transform authors
from ._containers import Dict, List
from ._diff import Change
from ._diff import changes as graph_changes
from ._display import display, render, summary, tabulate
from ._errors import (
    CapturedMutationError,
    FilterError,
    GraphError,
    ModuleInJaxError,
    MutableStaticError,
    RamieError,
    RngStreamError,
    StaleStructureError,
    StateLeafError,
    TraceLeakError,
    UnclassifiableAttributeError,
    UntrackedContainerError,
    format_path,
    format_paths,
)
from ._filters import (
    All,
    Everything,
    Filter,
    Not,
    Nothing,
    OfType,
    PathContains,
    WithTag,
    to_predicate,
)
from ._filters import Any_ as Any
from ._flatgraph import GraphDef
from ._functional import Functional, functional
from ._graph import flatten, unflatten
from ._graph_utils import (
    as_abstract,
    call,
    capture,
    iter_graph,
    map,
    merge_state,
    prefix,
    recursive_map,
    unpack,
)
from ._markers import Data, Static, data, static
from ._module import Module
from ._pytree import PathKey, Pytree, dataclass
from ._rngs import RngCount, RngKey, Rngs, RngState, RngStream
from ._rngtools import SplitBackups, fork_rngs, restore_rngs, with_rngs
from ._sharding import (
    eager_sharding_enabled,
    get_abstract_model,
    get_logical_axis_rules,
    get_named_sharding,
    get_partition_spec,
    logical_axis_rules,
    logical_to_mesh_axes,
    sharded_init,
    sharding_names,
    use_eager_sharding,
    with_partitioning,
    with_sharding_constraint,
)
from ._state import GraphState, State, replace_by_pure_dict, to_pure_dict
from ._variables import BatchStat, Cache, Intermediate, Param, Variable, VariableMetadata
from ._verify import check_structure
from ._views import view, view_info, with_attributes

#: Core's modules from the bottom up: a module imports only modules before it.
_LAYERS = (
    # foundations: import no other core module
    "_errors",  # error types and message templates
    "_traversals",  # flatten / unflatten nested mappings (NNX's traversals)
    "_caches",  # bounded caches, clear_caches()
    "_nodes",  # graph node records
    "_reprs",  # repr hooks, filled in by _display
    "_frames",  # per-thread transform frames
    "_valuecache",  # when a FlatGraph's kept list of leaf values is still true
    # rules for what a Module may hold
    "_statics",  # static (non-array) attribute values
    "_markers",  # data(...) / static(...) markers, Data[...] / Static[...] annotations
    "_plainjax",  # Modules meeting plain JAX transformations
    "_containers",  # the structure version; tracked List / Dict
    "_filters",  # Variable filters
    # the objects
    "_variables",
    "_state",
    "_module",
    "_rngs",
    # graphs: flatten / unflatten and their checks
    "_codegen",
    "_flatgraph",  # GraphDef, FlatGraph: reading and writing leaves without a walk
    "_fastcall",  # a transform's per-call fast path over a FlatGraph, in one frame
    "_graph",
    "_capture",
    "_diff",
    "_verify",
    "_pytree",  # Modules as JAX pytrees; Pytree, dataclass
    # the functional API
    "_api",
    "_functional",
    "_rngtools",  # fork_rngs / restore_rngs / with_rngs
    "_graph_utils",  # iter_graph, recursive_map, map, unpack, prefix, GraphDef.apply, capture
    "_views",  # view, with_attributes: new Modules over the same Variables
    "_sharding",  # logical axis names -> PartitionSpecs / NamedShardings, sharded init
    # on top: showing objects, the seam for transform authors
    "_display",
    "extend",
    "traversals",
)

try:
    __version__ = _version("ramie-core")
except _PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "Data",
    "PathKey",
    "Pytree",
    "Static",
    "data",
    "dataclass",
    "static",
    "SplitBackups",
    "fork_rngs",
    "restore_rngs",
    "with_rngs",
    "All",
    "Any",
    "BatchStat",
    "Cache",
    "Change",
    "ClosureReadWarning",
    "CapturedMutationError",
    "Dict",
    "Everything",
    "Filter",
    "FilterError",
    "Functional",
    "GraphDef",
    "GraphError",
    "GraphState",
    "Intermediate",
    "List",
    "Module",
    "ModuleInJaxError",
    "MutableStaticError",
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
    "StaleStructureError",
    "Rngs",
    "State",
    "StateLeafError",
    "TraceLeakError",
    "UnclassifiableAttributeError",
    "UntrackedContainerError",
    "Variable",
    "WithTag",
    "as_abstract",
    "call",
    "capture",
    "VariableMetadata",
    "check_structure",
    "clear_caches",
    "clone",
    "display",
    "flatten",
    "format_path",
    "format_paths",
    "functional",
    "graph_changes",
    "graphdef",
    "iter_graph",
    "map",
    "merge",
    "merge_state",
    "pop",
    "prefix",
    "recursive_map",
    "render",
    "replace_by_pure_dict",
    "split",
    "state",
    "summary",
    "tabulate",
    "to_predicate",
    "to_pure_dict",
    "unflatten",
    "unpack",
    "update",
    "view",
    "view_info",
    "with_attributes",
    "eager_sharding_enabled",
    "get_abstract_model",
    "get_logical_axis_rules",
    "get_named_sharding",
    "get_partition_spec",
    "logical_axis_rules",
    "logical_to_mesh_axes",
    "sharded_init",
    "sharding_names",
    "use_eager_sharding",
    "with_partitioning",
    "with_sharding_constraint",
]
