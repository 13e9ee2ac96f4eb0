"""Property: a transform applied to random object graphs (with sharing) acts like eager code."""

import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie import core
from ramie.transforms import jit, vmap


class Node(core.Module):
    pass


@st.composite
def graphs(draw):
    """A few Nodes holding Params/BatchStats, some shared between nodes (a DAG)."""
    n_vars = draw(st.integers(1, 6))
    variables = [
        draw(st.sampled_from([core.Param, core.BatchStat]))(jnp.full((2,), float(i)))
        for i in range(n_vars)
    ]
    nodes = [Node() for _ in range(draw(st.integers(1, 4)))]
    for k, node in enumerate(nodes):
        for j in draw(st.lists(st.integers(0, n_vars - 1), min_size=1, max_size=4)):
            setattr(node, f"v{j}", variables[j])
        if k and draw(st.booleans()):
            node.child = nodes[draw(st.integers(0, k - 1))]  # shared submodule
    root = Node()
    root.nodes = nodes
    return root


def bump(root, scale):
    """Eager reference: add ``scale * (i + 1)`` to each distinct Variable once."""
    seen = []
    for _, module in root.iter_modules():
        for name in sorted(vars(module)):
            v = getattr(module, name)
            if isinstance(v, core.Variable) and not any(v is s for s in seen):
                seen.append(v)
    for i, v in enumerate(seen):
        v.value = v.value + scale * (i + 1)
    return len(seen)


@settings(max_examples=40, deadline=None)
@given(graphs(), st.floats(-3, 3, allow_nan=False))
def test_jit_propagates_like_eager_and_keeps_sharing(root, scale):
    expected = core.clone(root)
    bump(expected, scale)
    before = core.graphdef(root)
    jit(bump)(root, scale)
    assert core.graphdef(root) == before  # same objects, same sharing
    got = core.state(root).flat_state()
    want = core.state(expected).flat_state()
    assert got.keys() == want.keys()
    for path in got:
        np.testing.assert_allclose(got[path].value, want[path].value, rtol=1e-5, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(graphs(), st.integers(1, 3))
def test_vmap_with_broadcast_objects_returns_per_copy_results(root, n):
    flat = core.state(root).flat_state()
    before = core.graphdef(root)
    total = sum(float(v.value.sum()) for v in flat.values())

    def read(root, x):
        return x + sum(v.value.sum() for v in core.state(root).flat_state().values())

    out = vmap(read, in_axes=(None, 0))(root, jnp.arange(float(n)))
    np.testing.assert_allclose(out, np.arange(n) + total, rtol=1e-5)
    assert core.graphdef(root) == before
