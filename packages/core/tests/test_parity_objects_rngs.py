"""Rngs helpers from Flax NNX (issue 14): samplers, split/broadcast, fork_rngs, with_rngs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core
from ramie.core import _rngs


def _key(rngs_stream_key):
    return jax.random.key_data(rngs_stream_key).tolist()


def test_samplers_draw_one_key_each_like_a_call():
    rngs = core.Rngs(0, params=1)
    a = rngs.normal((2, 3))
    assert int(rngs.default.count.value) == 1
    expected = jax.random.normal(jax.random.fold_in(jax.random.key(0), 0), (2, 3))
    np.testing.assert_array_equal(a, expected)
    u = rngs.params.uniform((4,), minval=2.0, maxval=3.0)
    assert int(rngs.params.count.value) == 1 and bool(((u >= 2) & (u < 3)).all())
    b = rngs.params.bernoulli(0.5, (100,))
    assert b.dtype == jnp.bool_ and 20 < int(b.sum()) < 80
    assert rngs.params.randint((3,), 0, 5).dtype == jnp.int32
    assert sorted(rngs.permutation(5).tolist()) == [0, 1, 2, 3, 4]
    assert int(rngs.default.count.value) == 2 and int(rngs.params.count.value) == 3


def test_samplers_are_deterministic_per_seed_and_independent_per_draw():
    one, two = core.Rngs(7), core.Rngs(7)
    first = [one.normal((3,)).tolist(), one.uniform((3,)).tolist()]
    assert first == [two.normal((3,)).tolist(), two.uniform((3,)).tolist()]
    assert one.normal((3,)).tolist() != core.Rngs(7).normal((3,)).tolist()  # next draw differs
    assert core.Rngs(8).normal((3,)).tolist() != core.Rngs(7).normal((3,)).tolist()


_CHECKED = ("bernoulli", "categorical", "choice", "gamma", "lognormal", "truncated_normal")


def test_every_sampler_is_named_after_its_jax_random_function():
    for name in _rngs.SAMPLERS:
        for owner in (core.Rngs, core.RngStream):
            method = getattr(owner, name)
            assert method.__name__ == name and f"jax.random.{name}`" in method.__doc__
        assert callable(getattr(jax.random, name))


@pytest.mark.parametrize("name", _CHECKED)
def test_samplers_are_jax_random_with_the_next_key(name):
    args = {
        "ball": (3,),
        "bernoulli": (0.3, (2,)),
        "beta": (2.0, 3.0, (2,)),
        "binomial": (5, 0.5, (2,)),
        "categorical": (jnp.zeros(4),),
        "chisquare": (3.0, (2,)),
        "choice": (5, (2,)),
        "dirichlet": (jnp.ones(3),),
        "f": (2.0, 3.0, (2,)),
        "gamma": (2.0, (2,)),
        "generalized_normal": (2.0, (2,)),
        "geometric": (0.5, (2,)),
        "loggamma": (2.0, (2,)),
        "lognormal": (0.5, (2,)),
        "multinomial": (5, jnp.ones(3) / 3),
        "multivariate_normal": (jnp.zeros(2), jnp.eye(2)),
        "orthogonal": (3,),
        "pareto": (2.0, (2,)),
        "permutation": (4,),
        "poisson": (3.0, (2,)),
        "randint": ((2,), 0, 9),
        "t": (3.0, (2,)),
        "triangular": (0.0, 0.5, 1.0, (2,)),
        "truncated_normal": (-1.0, 1.0, (2,)),
        "wald": (1.0, (2,)),
        "weibull_min": (1.0, 2.0, (2,)),
    }.get(name, ((2,),))
    rngs = core.Rngs(3)
    got = getattr(rngs.default, name)(*args)
    want = getattr(jax.random, name)(jax.random.fold_in(jax.random.key(3), 0), *args)
    np.testing.assert_array_equal(got, want)
    assert int(rngs.default.count.value) == 1
    assert getattr(core.Rngs, name).__name__ == name


def test_initializers_draw_a_key_at_each_call():
    rngs = core.Rngs(params=0)
    init = rngs.params.lecun_normal()
    assert int(rngs.params.count.value) == 0
    a, b = init((3, 4)), init((3, 4))
    assert a.shape == (3, 4) and a.tolist() != b.tolist()
    assert int(rngs.params.count.value) == 2
    want = jax.nn.initializers.lecun_normal()(
        jax.random.fold_in(jax.random.key(0), 0), (3, 4), jnp.float32
    )
    np.testing.assert_array_equal(a, want)


def test_sampler_names_cannot_be_stream_names():
    with pytest.raises(ValueError) as info:
        core.Rngs(normal=0)
    assert "'normal'" in str(info.value)


def test_stream_split_and_broadcast_make_new_streams_and_advance_this_one():
    rngs = core.Rngs(params=0)
    split = rngs.params.split(4)
    assert split.key.value.shape == (4,) and split.count.value.shape == (4,)
    assert int(rngs.params.count.value) == 1
    keys = jax.random.key_data(split())
    assert len({tuple(k) for k in keys.tolist()}) == 4  # independent
    broadcast = rngs.params.broadcast((2, 3))
    assert broadcast.key.value.shape == (2, 3) and int(rngs.params.count.value) == 2
    keys = jax.random.key_data(broadcast()).reshape(6, 2).tolist()
    assert all(k == keys[0] for k in keys)  # the same key everywhere
    assert broadcast.tag == "params"


def test_rngs_split_takes_a_mapping_by_stream_name():
    rngs = core.Rngs(params=1, dropout=2, noise=3)
    new = rngs.split({"params": 5, "dropout": None, ...: (2, 5)})
    assert new.params.key.value.shape == (5,)
    assert new.dropout.key.value.shape == ()
    assert new.noise.key.value.shape == (2, 5)
    assert all(int(rngs[n].count.value) == 1 for n in ("params", "dropout", "noise"))
    assert core.Rngs(params=1).split(3).params.key.value.shape == (3,)


class Model(core.Module):
    def __init__(self, rngs):
        self.rngs = rngs
        self.w = core.Param(jnp.ones(2))


def test_fork_rngs_in_place_with_backups_and_restore():
    rngs = core.Rngs(params=0, dropout=1)
    model = Model(rngs)
    before = _key(rngs.params.key.value)
    backups = core.fork_rngs(model, split={"params": 4})
    assert isinstance(backups, core.SplitBackups) and len(backups) == 2
    assert rngs.params.key.value.shape == (4,) and rngs.dropout.key.value.shape == ()
    assert _key(rngs.dropout.key.value) != _key(core.Rngs(dropout=1).dropout.key.value)
    core.restore_rngs(backups)
    assert _key(rngs.params.key.value) == before
    assert int(rngs.params.count.value) == 1  # the fork's draw stays counted


def test_fork_rngs_as_context_manager_and_decorator():
    rngs = core.Rngs(params=0)
    with core.fork_rngs(rngs, split=3):
        assert rngs.params.key.value.shape == (3,)
    assert rngs.params.key.value.shape == ()

    seen = []

    @core.fork_rngs(split=2)
    def build(rngs):
        seen.append(rngs.params.key.value.shape)
        return rngs.params()

    build(rngs)
    assert seen == [(2,)] and rngs.params.key.value.shape == ()
    assert int(rngs.params.count.value) == 2


def test_with_rngs_returns_a_copy_and_leaves_the_original_streams_keys():
    rngs = core.Rngs(params=0, dropout=1, noise=2)
    model = Model(rngs)
    new = core.with_rngs(model, split={"params": 4}, fork="dropout", broadcast=(2,))
    assert new is not model and new.rngs is not rngs and new.w is not model.w
    assert new.rngs.params.key.value.shape == (4,)
    assert new.rngs.dropout.key.value.shape == ()
    assert new.rngs.noise.key.value.shape == (2,)
    assert rngs.params.key.value.shape == () and int(rngs.params.count.value) == 1
    assert int(rngs.noise.count.value) == 1
    only = core.with_rngs(rngs, split=3, only="params")
    assert only.params.key.value.shape == (3,) and only.dropout.key.value.shape == ()
    untouched = core.with_rngs(rngs)
    assert _key(untouched.dropout.key.value) == _key(rngs.dropout.key.value)


def test_fork_and_split_are_keyword_only_like_nnx():
    rngs = core.Rngs(0)
    with pytest.raises(TypeError):
        rngs.fork(2)
    assert rngs.fork(split=2).default.key.value.shape == (2,)
