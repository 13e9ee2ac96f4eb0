"""Nested-mapping traversals under NNX's names (``flax.nnx.traversals``).

>>> from ramie.core import traversals
>>> traversals.flatten_mapping({"a": {"b": 1}})
{('a', 'b'): 1}
"""

from ._traversals import empty_node, flatten_mapping, flatten_to_sequence, unflatten_mapping

__all__ = ["empty_node", "flatten_mapping", "flatten_to_sequence", "unflatten_mapping"]
