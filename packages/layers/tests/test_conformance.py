"""Every public layer, driven by the descriptor list in _descriptors.py, through the same checks.

Eager call (output shape/dtype against the golden file), ``jax.jit`` via
split/merge, ``jax.vmap``, ``jax.grad``, float32 and bfloat16, the split/merge
round trip, and the golden parameter structure (paths, shapes, dtypes, kinds)
committed under ``tests/golden/<Layer>.json``.

The golden files are never rewritten by a normal run: a mismatch fails. After
an intended change, regenerate them with ``RAMIE_REGEN_GOLDEN=1 pytest
packages/layers/tests/test_conformance.py`` and review the diff.
"""

import json
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ramie.layers as layers
from ramie.core import Module, Param, Rngs, merge, split

sys.path.insert(0, str(Path(__file__).parent))
from _descriptors import CASES, CONFORMANCE, Case  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("RAMIE_REGEN_GOLDEN") == "1"
ids = [c.id for c in CONFORMANCE]


def build(case: Case, **dtypes) -> Module:
    return case.make(layers, Rngs(0), **(dtypes if case.dtype_kwargs else {}))


def leaves(tree) -> list:
    return jax.tree.leaves(tree)


def assert_trees_close(a, b, rtol=1e-6, atol=1e-6):
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol, atol)


def structure(layer: Module) -> dict:
    flat = split(layer)[1].flat_state()
    out = {}
    for path, leaf in flat.items():
        kind = type(leaf).__name__
        value = leaf.value if hasattr(leaf, "value") else leaf
        out["/".join(map(str, path))] = f"{kind} {value.dtype}{list(value.shape)}"
    return out


def test_every_public_layer_has_a_descriptor():
    covered = {c.name for c in CONFORMANCE}
    public = {
        name
        for name in layers.__all__
        if isinstance(getattr(layers, name), type) and issubclass(getattr(layers, name), Module)
    }
    assert public - covered == set(), f"layers without a descriptor: {sorted(public - covered)}"
    assert covered <= public
    assert {c.name for c in CASES} <= public


@pytest.mark.parametrize("case", CONFORMANCE, ids=ids)
def test_golden_structure_and_eager_call(case):
    layer = build(case)
    inputs = case.inputs(jnp.float32)
    out = case.apply(layer, *inputs)
    for leaf in leaves(out):
        assert bool(jnp.isfinite(leaf).all())
    got = {
        "parameters": structure(build(case)),
        "output": jax.tree.map(lambda y: f"{y.dtype}{list(y.shape)}", out),
    }
    path = GOLDEN / f"{case.id}.json"
    if REGEN:
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert path.exists(), f"no golden file {path.name}; run with RAMIE_REGEN_GOLDEN=1 once"
    expected = json.loads(path.read_text())
    assert got["parameters"] == expected["parameters"]
    assert json.loads(json.dumps(got["output"])) == expected["output"]


@pytest.mark.parametrize("case", CONFORMANCE, ids=ids)
def test_jit_via_split_merge_matches_eager_including_state_updates(case):
    inputs = case.inputs(jnp.float32)
    eager = build(case)
    graphdef, state = split(build(case))

    @jax.jit
    def step(state, *inputs):
        layer = merge(graphdef, state)
        out = case.apply(layer, *inputs)
        return out, split(layer)[1]

    out, new_state = step(state, *inputs)
    expected = case.apply(eager, *inputs)
    assert_trees_close(out, expected, rtol=1e-5, atol=1e-5)
    assert_trees_close(new_state, split(eager)[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CONFORMANCE, ids=ids)
def test_vmap_equals_per_example_calls(case):
    layer = build(case)
    layer.eval()
    graphdef, state = split(layer)
    first = case.inputs(jnp.float32)
    second = tuple(x + 1 if jnp.issubdtype(x.dtype, jnp.integer) else x * 0.5 for x in first)
    stacked = tuple(jnp.stack([a, b]) for a, b in zip(first, second, strict=True))
    out = jax.vmap(lambda *xs: case.apply(merge(graphdef, state), *xs))(*stacked)
    for i, example in enumerate([first, second]):
        single = case.apply(merge(graphdef, state), *example)
        assert_trees_close(jax.tree.map(lambda y, i=i: y[i], out), single, rtol=1e-5, atol=1e-5)


def _loss(case, layer, inputs):
    out = case.apply(layer, *inputs)
    return sum(jnp.sum(jnp.sin(y)) for y in leaves(out))


@pytest.mark.parametrize("case", CONFORMANCE, ids=ids)
def test_grad_reaches_every_parameter(case):
    graphdef, params, rest = split(build(case), Param, ...)
    inputs = case.inputs(jnp.float32)
    if not leaves(params):  # no parameters (Dropout): differentiate the input
        grad = jax.grad(lambda x: _loss(case, merge(graphdef, params, rest), (x,)))(inputs[0])
        assert bool(jnp.isfinite(grad).all()) and bool((grad != 0).any())
        return
    grads = jax.grad(lambda p: _loss(case, merge(graphdef, p, rest), inputs))(params)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    flat = grads.flat_state()
    for path, g in flat.items():
        assert bool(jnp.isfinite(g.value).all()), path
    assert any(bool((g.value != 0).any()) for g in flat.values())


@pytest.mark.parametrize("case", CONFORMANCE, ids=ids)
def test_bfloat16_compute_and_storage(case):
    bf16 = jnp.bfloat16
    inputs = case.inputs(bf16)
    # storage and compute in bfloat16
    layer = build(case, dtype=bf16, param_dtype=bf16)
    for y in leaves(case.apply(layer, *inputs)):
        assert y.dtype == bf16
    for path, leaf in split(layer, Param, ...)[1].flat_state().items():
        assert leaf.value.dtype == bf16, path
    if case.dtype_kwargs:  # float32 storage, bfloat16 compute
        layer = build(case, dtype=bf16)
        for y in leaves(case.apply(layer, *inputs)):
            assert y.dtype == bf16
        for leaf in split(layer, Param, ...)[1].flat_state().values():
            assert leaf.value.dtype == jnp.float32


@pytest.mark.parametrize("case", CONFORMANCE, ids=ids)
def test_split_merge_round_trip(case):
    layer = build(case)
    graphdef, state = split(layer)
    copy = merge(graphdef, state)
    assert type(copy) is type(layer)
    graphdef2, state2 = split(copy)
    assert graphdef2 == graphdef
    assert_trees_close(state2, state, rtol=0, atol=0)
    inputs = case.inputs(jnp.float32)
    assert_trees_close(case.apply(copy, *inputs), case.apply(layer, *inputs), rtol=0, atol=0)
