"""NNX's traversals: flatten_mapping / unflatten_mapping / flatten_to_sequence."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie.core import traversals
from ramie.core.traversals import empty_node, flatten_mapping, unflatten_mapping


def test_flatten_and_unflatten_examples():
    nested = {"a": 1, "b": {"c": 2, "d": {"e": 3}}, "f": {}}
    assert flatten_mapping(nested) == {("a",): 1, ("b", "c"): 2, ("b", "d", "e"): 3}
    assert flatten_mapping(nested, sep="/") == {"a": 1, "b/c": 2, "b/d/e": 3}
    kept = flatten_mapping(nested, keep_empty_nodes=True)
    assert kept[("f",)] is empty_node and repr(empty_node) == "empty_node"
    assert unflatten_mapping(kept) == nested
    assert unflatten_mapping(flatten_mapping(nested, sep="/"), sep="/") == {
        "a": 1,
        "b": {"c": 2, "d": {"e": 3}},
    }
    whole = flatten_mapping(nested, is_leaf=lambda path, v: path == ("b", "d"))
    assert whole[("b", "d")] == {"e": 3}
    assert traversals.flatten_to_sequence({"x": {"y": 1}, "z": 2}) == [(("x", "y"), 1), (("z",), 2)]
    assert unflatten_mapping([(("x", "y"), 1)]) == {"x": {"y": 1}}


def test_unflatten_refuses_a_path_under_a_value():
    with pytest.raises(ValueError, match=r"\('a',\) holds a value"):
        unflatten_mapping({("a",): 1, ("a", "b"): 2})
    with pytest.raises(ValueError, match="both a value and the prefix"):
        unflatten_mapping({("a", "b"): 2, ("a",): 1})
    with pytest.raises(ValueError, match="empty path"):
        unflatten_mapping({(): 1})


keys = st.one_of(st.text("abc", min_size=1, max_size=2), st.integers(0, 3))
nested_maps = st.recursive(
    st.integers(), lambda inner: st.dictionaries(keys, inner, min_size=1, max_size=3), max_leaves=8
).filter(lambda x: isinstance(x, dict))


@settings(max_examples=100, deadline=None)
@given(nested_maps)
def test_flatten_then_unflatten_is_the_identity(tree):
    assert unflatten_mapping(flatten_mapping(tree)) == tree
    assert list(flatten_mapping(tree).items()) == traversals.flatten_to_sequence(tree)
