"""``ramie.nn.graph``: the graph functions under the module name NNX programs import.

``from flax.nnx import graph`` becomes ``from ramie.nn import graph``; the
names are ramie.core's (``nn.graph.split is nn.split``).

>>> import jax.numpy as jnp
>>> from ramie import nn
>>> from ramie.nn import graph
>>> class M(nn.Module):
...     def __init__(self):
...         self.w = nn.Param(jnp.ones(2))
>>> graphdef, state = graph.split(M())
>>> type(graph.merge(graphdef, state)).__name__
'M'
"""

from ramie.core import (
    GraphDef,
    GraphState,
    as_abstract,
    call,
    clone,
    flatten,
    graphdef,
    iter_graph,
    map,
    merge,
    merge_state,
    pop,
    prefix,
    recursive_map,
    split,
    state,
    unflatten,
    unpack,
    update,
)

__all__ = [
    "GraphDef",
    "GraphState",
    "as_abstract",
    "call",
    "clone",
    "flatten",
    "graphdef",
    "iter_graph",
    "map",
    "merge",
    "merge_state",
    "pop",
    "prefix",
    "recursive_map",
    "split",
    "state",
    "unflatten",
    "unpack",
    "update",
]
