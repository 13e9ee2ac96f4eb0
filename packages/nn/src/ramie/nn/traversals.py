"""``ramie.nn.traversals``: NNX's ``flax.nnx.traversals`` (nested mappings <-> flat paths).

>>> from ramie.nn import traversals
>>> traversals.flatten_mapping({"a": {"b": 1}}, sep="/")
{'a/b': 1}
>>> traversals.unflatten_mapping({("a", "b"): 1})
{'a': {'b': 1}}
"""

from ramie.core.traversals import (
    empty_node,
    flatten_mapping,
    flatten_to_sequence,
    unflatten_mapping,
)

__all__ = ["empty_node", "flatten_mapping", "flatten_to_sequence", "unflatten_mapping"]
