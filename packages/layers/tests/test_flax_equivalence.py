"""Equivalence with Flax NNX: the same configuration gives the same structure and outputs.

For every descriptor that Flax also has, both libraries build the layer from
the same seed. The test checks that the parameter paths, shapes and kinds
match, that ramie initialises the same values from the same seed, then
perturbs Flax's parameters (so that zero-initialised ones such as LoRA's
``lora_b`` matter), copies them into ramie by path (with BatchStats and RNG
streams: Dropout masks come from the same ``jax.random.bernoulli`` call on the
same key, so they match exactly) and compares outputs to 1e-5 in train and in
eval mode, and BatchNorm's running statistics after a training step.

Flax is an optional test dependency (the nox session installs it); without it
these tests are skipped.
"""

import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ramie.layers as layers
from ramie.core import Param, Rngs, RngState, split, update

nnx = pytest.importorskip("flax.nnx")

sys.path.insert(0, str(Path(__file__).parent))
from _descriptors import CASES  # noqa: E402

FLAX_CASES = [c for c in CASES if c.flax]


def _plain(value):
    if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(value))
    return np.asarray(value)


def flax_flat(model) -> dict:
    """Flax's state as {path: (kind name, Variable)}."""
    return {
        tuple(path): (type(var).__name__, var) for path, var in nnx.to_flat_state(nnx.state(model))
    }


def ramie_flat(model) -> dict:
    return {path: (type(v).__name__, v) for path, v in split(model)[1].flat_state().items()}


def match_variance_algorithm(ours, theirs) -> None:
    """Give Flax's norm layers ramie's ``use_fast_variance`` (path by path).

    Flax defaults to the fast variance ``E[x^2] - E[x]^2``, ramie to the stable
    ``E[(x - E[x])^2]``; comparing like with like keeps the 1e-5 tolerance
    meaningful (the fast one loses digits on small or offset inputs). Cases with
    ``use_fast_variance=True`` compare the fast algorithm on both sides.
    """
    flax_modules = dict(nnx.iter_modules(theirs))
    for path, module in ours.iter_modules():
        if hasattr(module, "use_fast_variance"):
            flax_modules[path].use_fast_variance = module.use_fast_variance


def build_pair(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = case.make(nnx, nnx.Rngs(0))
    ours = case.make(layers, Rngs(0))
    match_variance_algorithm(ours, theirs)
    return ours, theirs


def set_mode(ours, theirs, train: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (theirs.train if train else theirs.eval)()
    (ours.train if train else ours.eval)()


def copy_flax_into_ramie(ours, theirs) -> None:
    """Perturb Flax's Params, then write all of Flax's values into ramie by path."""
    state = nnx.state(theirs)
    rng = np.random.default_rng(1)
    for _, var in nnx.to_flat_state(state):
        if isinstance(var, nnx.Param):
            value = var.get_value()
            var.set_value(value + jnp.asarray(rng.normal(0, 0.3, value.shape), value.dtype))
    nnx.update(theirs, state)
    flat = flax_flat(theirs)
    ours_state = split(ours)[1]
    for path, leaf in ours_state.flat_state().items():
        leaf.value = flat[path][1].get_value()
    update(ours, ours_state)


@pytest.mark.parametrize("case", FLAX_CASES, ids=[c.id for c in FLAX_CASES])
def test_same_structure_and_initial_values(case):
    ours, theirs = build_pair(case)
    mine, flax = ramie_flat(ours), flax_flat(theirs)
    kinds = ("Param", "BatchStat", "LoRAParam", "Cache")
    mine_params = {p: (k, v.value.shape) for p, (k, v) in mine.items() if k in kinds}
    flax_params = {p: (k, v.get_value().shape) for p, (k, v) in flax.items() if k in kinds}
    assert mine_params == flax_params
    for path, (kind, var) in mine.items():
        assert path in flax, f"ramie has {path} ({kind}); Flax does not"
        np.testing.assert_allclose(
            _plain(var.value), _plain(flax[path][1].get_value()), rtol=1e-6, atol=1e-6,
            err_msg=f"initial value at {path}",
        )  # fmt: skip
    assert all(isinstance(v, RngState) for p, (k, v) in mine.items() if p not in flax_params)


def _compare(case, ours, theirs, train: bool):
    set_mode(ours, theirs, train)
    inputs = case.inputs(jnp.float32)
    for _ in range(2):  # twice: the second call sees updated statistics / RNG counters
        expected = case.apply(theirs, *inputs)
        got = case.apply(ours, *inputs)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    flax = flax_flat(theirs)
    for path, (_kind, var) in ramie_flat(ours).items():
        np.testing.assert_allclose(
            _plain(var.value), _plain(flax[path][1].get_value()), rtol=1e-5, atol=1e-5,
            err_msg=f"state at {path} after two {'train' if train else 'eval'} calls",
        )  # fmt: skip


@pytest.mark.parametrize("case", FLAX_CASES, ids=[c.id for c in FLAX_CASES])
def test_same_outputs_train_and_eval(case):
    ours, theirs = build_pair(case)
    copy_flax_into_ramie(ours, theirs)
    _compare(case, ours, theirs, train=True)
    _compare(case, ours, theirs, train=False)


def test_dropout_masks_are_not_trivial():
    """The Dropout comparison above is meaningful: the mask is random and changes per call."""
    ours = layers.Dropout(0.5, rngs=Rngs(0))
    a, b = ours(jnp.ones(64)), ours(jnp.ones(64))
    assert 10 < int((a == 0).sum()) < 54 and bool((a != b).any())


def test_decode_cache_matches_flax():
    """Autoregressive decoding, one position at a time, gives Flax's outputs and cache."""
    ours, theirs = build_pair(
        next(c for c in FLAX_CASES if c.name == "MultiHeadAttention" and not c.variant)
    )
    copy_flax_into_ramie(ours, theirs)
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 4, 8)), jnp.float32)
    ours.init_cache(x.shape)
    theirs.init_cache(x.shape)
    for t in range(4):
        step = x[:, t : t + 1]
        got = ours(step, decode=True)
        expected = theirs(step, decode=True)
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(ours.cached_key.value), np.asarray(theirs.cached_key.get_value()), atol=1e-6
    )
    assert int(ours.cache_index.value) == 4


def test_param_kind_is_flax_compatible():
    assert issubclass(layers.LoRAParam, Param)


# --- SpectralNorm / WeightNorm: Flax keys their per-Param state by tuple paths
# (('batch_stats', ('kernel', 'u'))) and keeps WeightNorm's scales as plain arrays;
# ramie nests dicts along the path (batch_stats/kernel/u) and makes scales Params.

WRAPPERS = {
    "spectral-linear": lambda L, r: L.SpectralNorm(L.Linear(4, 5, rngs=r), n_steps=3, rngs=r),
    "spectral-conv": lambda L, r: L.SpectralNorm(L.Conv(4, 5, (2, 3), rngs=r), rngs=r),
    "spectral-frozen": lambda L, r: L.SpectralNorm(
        L.Linear(4, 5, rngs=r), update_stats=False, rngs=r
    ),
    "weight-linear": lambda L, r: L.WeightNorm(L.Linear(4, 5, rngs=r), rngs=r),
    "weight-conv-whole": lambda L, r: L.WeightNorm(
        L.Conv(4, 5, (2, 3), rngs=r), feature_axes=None, rngs=r
    ),
    "weight-conv-axes": lambda L, r: L.WeightNorm(
        L.Conv(4, 5, (2, 3), rngs=r), feature_axes=(-2, -1), rngs=r
    ),
    "weight-no-scale": lambda L, r: L.WeightNorm(L.Linear(4, 5, rngs=r), use_scale=False, rngs=r),
    "weight-bias-too": lambda L, r: L.WeightNorm(
        L.Linear(4, 5, rngs=r), variable_filter=lambda path, v: True, rngs=r
    ),
}


def _wrapper_input(name):
    shape = (2, 5, 6, 4) if "conv" in name else (3, 4)
    return jnp.asarray(np.random.default_rng(2).normal(size=shape), jnp.float32)


def _flax_wrapper_leaves(model) -> dict:
    """{ramie path: (getter, setter)} over Flax's state, tuple keys flattened."""
    out = {}
    for path, var in nnx.to_flat_state(nnx.state(model)):
        if not isinstance(var, nnx.Variable):
            continue  # WeightNorm's scales, below
        flat = tuple(p for part in path for p in (part if isinstance(part, tuple) else (part,)))
        out[flat] = (var.get_value, var.set_value)
    for key in getattr(model, "scales", None) or {}:  # plain arrays: not in nnx.state
        out[("scales", *key)] = (
            lambda k=key: model.scales[k],
            lambda v, k=key: model.scales.__setitem__(k, v),
        )
    return out


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_weight_wrappers_match_flax(name):
    theirs = WRAPPERS[name](nnx, nnx.Rngs(0))
    ours = WRAPPERS[name](layers, Rngs(0))
    leaves = _flax_wrapper_leaves(theirs)
    mine = split(ours)[1].flat_state()
    assert set(mine) == set(leaves)
    for path, leaf in mine.items():  # the same initial values (u from the same key) ...
        np.testing.assert_allclose(leaf.value, leaves[path][0](), rtol=1e-6, err_msg=str(path))
    rng = np.random.default_rng(1)
    ours_state = split(ours)[1]
    for path, leaf in ours_state.flat_state().items():  # ... then perturbed alike
        value = leaf.value + jnp.asarray(rng.normal(0, 0.3, leaf.value.shape), leaf.value.dtype)
        leaf.value = value
        leaves[path][1](value)
    update(ours, ours_state)
    x = _wrapper_input(name)
    for train in (True, False):
        set_mode(ours, theirs, train)
        for _ in range(2):  # the second call starts from the written-back Params and new u
            np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
        for path, leaf in split(ours)[1].flat_state().items():
            np.testing.assert_allclose(
                leaf.value, leaves[path][0](), rtol=1e-5, atol=1e-5, err_msg=f"{path} {train=}"
            )


def test_spectral_norm_update_stats_argument_matches_flax():
    theirs = WRAPPERS["spectral-linear"](nnx, nnx.Rngs(0))
    ours = WRAPPERS["spectral-linear"](layers, Rngs(0))
    x = _wrapper_input("spectral-linear")
    for update_stats in (False, True, False):
        np.testing.assert_allclose(
            ours(x, update_stats=update_stats), theirs(x, update_stats=update_stats), rtol=1e-5
        )
        np.testing.assert_allclose(
            ours.batch_stats["kernel"]["u"].value, theirs.batch_stats[("kernel", "u")][...]
        )
