"""Rngs: construction, streams, determinism, errors, counters as state, fork and split."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core
from ramie.core import _errors


def data(key):
    """The raw uint32 data of a typed key (or of stacked keys)."""
    return np.asarray(jax.random.key_data(key))


def same(a, b) -> bool:
    return np.array_equal(data(a), data(b))


# -- construction ------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: core.Rngs(0), id="int"),
        pytest.param(lambda: core.Rngs(np.int32(0)), id="numpy-int"),
        pytest.param(lambda: core.Rngs(jnp.array(0)), id="int-array"),
        pytest.param(lambda: core.Rngs(jax.random.key(3)), id="typed-key"),
        pytest.param(lambda: core.Rngs(jax.random.PRNGKey(3)), id="raw-uint32-key"),
    ],
)
def test_default_stream_from_any_seed(make):
    rngs = make()
    assert list(rngs.streams()) == ["default"]
    key = rngs()
    assert jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    assert key.shape == ()
    # any stream name falls back to default
    assert jax.dtypes.issubdtype(rngs.params().dtype, jax.dtypes.prng_key)


def test_raw_key_data_and_typed_key_give_the_same_stream():
    a = core.Rngs(jax.random.key(3))
    b = core.Rngs(jax.random.PRNGKey(3))
    c = core.Rngs(3)
    for _ in range(3):
        ka, kb, kc = a.params(), b.params(), c.params()
        assert same(ka, kb)
        assert same(ka, kc)


def test_named_streams():
    rngs = core.Rngs(params=0, dropout=1)
    assert sorted(rngs.streams()) == ["dropout", "params"]
    assert isinstance(rngs.params, core.RngStream)
    assert rngs["dropout"] is rngs.dropout
    assert dict(rngs.items()) == {"params": rngs.params, "dropout": rngs.dropout}
    # different seeds give different streams
    assert not same(rngs.params(), rngs.dropout())


def test_default_and_named_streams_together():
    rngs = core.Rngs(0, dropout=1)
    assert sorted(rngs.streams()) == ["default", "dropout"]
    assert rngs.dropout is not rngs.default
    assert rngs.params is rngs.default


# -- draws -------------------------------------------------------------------------
def test_consecutive_draws_differ():
    rngs = core.Rngs(params=0)
    k1, k2, k3 = rngs.params(), rngs.params(), rngs.params()
    assert not same(k1, k2)
    assert not same(k2, k3)
    assert not same(k1, k3)


def test_same_seed_gives_same_sequence():
    a = core.Rngs(params=42, dropout=7)
    b = core.Rngs(params=42, dropout=7)
    seq_a = [a.params(), a.dropout(), a.params(), a.params(), a.dropout()]
    seq_b = [b.params(), b.dropout(), b.params(), b.params(), b.dropout()]
    for ka, kb in zip(seq_a, seq_b, strict=True):
        assert same(ka, kb)
    c = core.Rngs(params=43)
    assert not same(core.Rngs(params=42).params(), c.params())


def test_fallback_to_default_shares_the_default_counter():
    a = core.Rngs(0)
    b = core.Rngs(0)
    ka = [a.params(), a.dropout(), a()]
    kb = [b(), b(), b()]
    for x, y in zip(ka, kb, strict=True):
        assert same(x, y)


# -- errors ----------------------------------------------------------------------------
def test_missing_stream_without_default_raises():
    rngs = core.Rngs(params=0, noise=2)
    with pytest.raises(core.RngStreamError) as info:
        rngs.dropout()
    err = info.value
    assert isinstance(err, AttributeError)
    assert isinstance(err, core.RamieError)
    message = str(err)
    assert "'dropout'" in message
    assert "params" in message and "noise" in message
    assert message == _errors.NO_RNG_STREAM.format(
        name="dropout",
        streams=["noise", "params"],
        example="noise=0, params=0, dropout=1",
    )
    assert not hasattr(rngs, "dropout")
    with pytest.raises(core.RngStreamError):
        rngs()  # no default either
    with pytest.raises(core.RngStreamError):
        rngs["dropout"]()


@pytest.mark.parametrize("seed", ["abc", 1.5, np.float32(1.5), jnp.array(1.5), True, [1, 2]])
def test_bad_seed_raises_type_error(seed):
    with pytest.raises(TypeError) as info:
        core.Rngs(params=seed)
    message = str(info.value)
    prefix = _errors.BAD_RNG_SEED.split("{found}")[0].format(name="params")
    assert message.startswith(prefix)


def test_bad_seed_message_is_the_constant():
    with pytest.raises(TypeError) as info:
        core.Rngs("abc")
    assert str(info.value) == _errors.BAD_RNG_SEED.format(name="default", found="'abc'")
    with pytest.raises(TypeError) as info:
        core.Rngs(dropout=1.5)
    assert str(info.value) == _errors.BAD_RNG_SEED.format(name="dropout", found="1.5")


@pytest.mark.parametrize(
    "name", ["fork", "streams", "items", "split_keys", "_private", "1abc", "a-b", "train", "eval"]
)
def test_reserved_or_invalid_stream_names_raise_value_error(name):
    with pytest.raises(ValueError) as info:
        core.Rngs(**{name: 0})
    assert repr(name) in str(info.value)
    assert "not allowed" in str(info.value)


# -- counters are state ---------------------------------------------------------------
def test_state_holds_key_and_count_variables():
    rngs = core.Rngs(0, dropout=1)
    st = core.state(rngs)
    assert set(st) == {"default", "dropout"}
    for name in ["default", "dropout"]:
        assert isinstance(st[name]["key"], core.RngKey)
        assert isinstance(st[name]["count"], core.RngCount)
        assert isinstance(st[name]["key"], core.RngState)
        assert int(st[name]["count"].value) == 0
    assert core.state(rngs, core.RngKey).paths() == [("default", "key"), ("dropout", "key")]
    assert core.state(rngs, core.RngCount).paths() == [("default", "count"), ("dropout", "count")]


def test_count_advances_after_a_call():
    rngs = core.Rngs(0, dropout=1)
    rngs.dropout()
    rngs.dropout()
    rngs.params()
    st = core.state(rngs, core.RngCount)
    assert int(st.dropout.count.value) == 2
    assert int(st.default.count.value) == 1


def test_advancing_inside_jit_propagates_the_count_back():
    rngs = core.Rngs(0, dropout=1)
    graphdef, st = core.split(rngs)

    @jax.jit
    def step(st):
        r = core.merge(graphdef, st)
        keys = (r.dropout(), r.dropout(), r.params())
        return keys, core.split(r)[1]

    keys, new_state = step(st)
    assert int(st.dropout.count.value) == 0  # the input State is untouched
    core.update(rngs, new_state)
    assert int(rngs.dropout.count.value) == 2
    assert int(rngs.default.count.value) == 1
    # keys drawn inside jit are the ones an eager copy would draw
    eager = core.Rngs(0, dropout=1)
    assert same(keys[0], eager.dropout())
    assert same(keys[1], eager.dropout())
    assert same(keys[2], eager.params())
    # and the next draw continues the sequence
    assert same(rngs.dropout(), eager.dropout())


def test_split_merge_roundtrip_keeps_the_stream_position():
    rngs = core.Rngs(5)
    rngs()
    rngs()
    copy = core.merge(*core.split(rngs))
    assert copy is not rngs
    assert same(copy(), rngs())


# -- fork ------------------------------------------------------------------------------
def test_fork_is_independent_and_advances_the_parent():
    parent = core.Rngs(0, dropout=1)
    reference = core.Rngs(0, dropout=1)
    child = parent.fork()
    assert isinstance(child, core.Rngs)
    assert child is not parent
    assert sorted(child.streams()) == ["default", "dropout"]
    assert int(parent.default.count.value) == 1
    assert int(parent.dropout.count.value) == 1
    assert int(child.default.count.value) == 0
    assert child.default is not parent.default
    assert child.default.key is not parent.default.key
    # the child's draws are not the parent's
    child_keys = [child(), child(), child.dropout()]
    reference()  # skip the key the fork consumed
    reference.dropout()
    parent_keys = [parent(), parent(), parent.dropout()]
    for k in child_keys:
        assert not any(same(k, p) for p in parent_keys)
    # drawing from the child did not move the parent further
    assert int(parent.default.count.value) == 3
    assert same(parent_keys[0], reference())


def test_fork_split_gives_stacked_keys_that_differ_per_copy():
    rngs = core.Rngs(0, dropout=1)
    forked = rngs.fork(split=4)
    assert forked.default.key.value.shape == (4,)
    assert forked.dropout.key.value.shape == (4,)
    assert forked.dropout.count.value.shape == (4,)
    keys = forked.dropout()
    assert keys.shape == (4,)
    rows = {tuple(r) for r in data(keys).tolist()}
    assert len(rows) == 4
    np.testing.assert_array_equal(forked.dropout.count.value, np.ones(4))
    again = forked.dropout()
    assert not np.array_equal(data(again), data(keys))


def test_fork_split_under_vmap_draws_differ_per_copy():
    forked = core.Rngs(0).fork(split=4)
    graphdef, st = core.split(forked)

    def draw(st):
        r = core.merge(graphdef, st)
        return jax.random.normal(r(), ()), core.split(r)[1]

    samples, new_state = jax.vmap(draw)(st)
    assert samples.shape == (4,)
    assert len(set(np.asarray(samples).tolist())) == 4
    np.testing.assert_array_equal(new_state.default.count.value, np.ones(4))


def test_fork_split_with_a_tuple_shape():
    forked = core.Rngs(0).fork(split=(2, 3))
    assert forked.default.key.value.shape == (2, 3)
    keys = forked()
    assert keys.shape == (2, 3)
    assert len({tuple(r) for r in data(keys).reshape(6, -1).tolist()}) == 6


def test_fork_split_per_stream_mapping():
    forked = core.Rngs(0, dropout=1).fork(split={"dropout": 3})
    assert forked.dropout.key.value.shape == (3,)
    assert forked.default.key.value.shape == ()


# -- split_keys and membership ----------------------------------------------------------
def test_split_keys():
    rngs = core.Rngs(params=0)
    keys = rngs.split_keys("params", 5)
    assert keys.shape == (5,)
    assert len({tuple(r) for r in data(keys).tolist()}) == 5
    assert int(rngs.params.count.value) == 1
    more = rngs.split_keys("params", 5)
    assert not np.array_equal(data(more), data(keys))
    assert rngs.split_keys("params", (2, 3)).shape == (2, 3)


def test_split_keys_is_deterministic():
    a = core.Rngs(params=0).split_keys("params", 3)
    b = core.Rngs(params=0).split_keys("params", 3)
    np.testing.assert_array_equal(data(a), data(b))


def test_membership():
    rngs = core.Rngs(params=0, dropout=1)
    assert "params" in rngs
    assert "dropout" in rngs
    assert "default" not in rngs
    assert "noise" not in rngs
    rngs2 = core.Rngs(0)
    assert "default" in rngs2
    assert "params" not in rngs2  # falls back, but is not a stream of its own


def test_rng_stream_directly():
    stream = core.RngStream(jax.random.key(0), tag="params")
    k1, k2 = stream(), stream()
    assert not same(k1, k2)
    assert int(stream.count.value) == 2
    assert stream.tag == "params"
