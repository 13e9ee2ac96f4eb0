"""NNX filter spellings: strings, PathContains(exact=...), `...` only last; Dict attributes."""

import jax.numpy as jnp
import pytest

from ramie import core
from ramie.core import _errors


class Block(core.Module):
    def __init__(self):
        self.kernel = core.Param(jnp.ones(2))
        self.kernel_1 = core.Param(jnp.ones(3))
        self.mean = core.BatchStat(jnp.zeros(2))
        self.rngs = core.Rngs(0, dropout=1)
        self.tagged = core.Variable(jnp.zeros(1), tag="dropout")


def _paths(state):
    return sorted(state.flat_state())


def test_a_string_filter_selects_a_rngs_stream_by_name():
    b = Block()
    assert _paths(core.state(b, "dropout")) == [
        ("rngs", "dropout", "count"),
        ("rngs", "dropout", "key"),
        ("tagged",),  # its tag metadata is 'dropout'
    ]


def test_a_string_filter_selects_a_collection_by_its_flax_name():
    b = Block()
    assert _paths(core.state(b, "params")) == [("kernel",), ("kernel_1",)]
    assert _paths(core.state(b, "batch_stats")) == [("mean",)]
    graphdef, params, rest = core.split(b, "params", ...)
    assert _paths(params) == [("kernel",), ("kernel_1",)]
    assert ("mean",) in rest.flat_state()


def test_string_filters_work_in_tuples_and_combinators():
    b = Block()
    assert _paths(core.state(b, ("params", "batch_stats"))) == [
        ("kernel",),
        ("kernel_1",),
        ("mean",),
    ]
    assert _paths(core.state(b, core.All("params", core.Not(core.PathContains("kernel_1"))))) == [
        ("kernel",)
    ]
    assert repr(core.to_predicate("dropout")) == "WithTag('dropout')"


def test_path_contains_exact_and_substring():
    b = Block()
    assert _paths(core.state(b, core.PathContains("kernel"))) == [("kernel",)]
    assert _paths(core.state(b, core.PathContains("kernel", exact=False))) == [
        ("kernel",),
        ("kernel_1",),
    ]
    # non-string keys (list indices) only match exactly
    assert core.PathContains(1, exact=False)(("layers", 10), None) is False
    assert core.PathContains(1, exact=False)(("layers", 1), None) is True
    assert repr(core.PathContains("k", exact=False)) == "PathContains(key='k', exact=False)"
    assert repr(core.PathContains("k")) == "PathContains(key='k')"  # as before exact= existed


@pytest.mark.parametrize("fn", ["split", "state", "pop"])
def test_everything_before_another_filter_is_an_error_naming_its_position(fn):
    b = Block()
    with pytest.raises(core.FilterError) as info:
        getattr(core, fn)(b, core.Param, ..., core.BatchStat)
    assert str(info.value) == _errors.EVERYTHING_NOT_LAST.format(
        fn=fn, position=2, count=3, rest="BatchStat", suggestion="Param, BatchStat, ..."
    )
    with pytest.raises(core.FilterError, match=r"filter 1 of 2 is `...`"):
        getattr(core, fn)(b, True, core.Param)
    with pytest.raises(core.FilterError, match=r"State.filter\(\): filter 1 of 2"):
        core.state(b).filter(..., core.Param)


def test_everything_may_repeat_at_the_end():
    b = Block()
    _, params, rest, empty = core.split(b, core.Param, ..., ...)
    assert _paths(params) == [("kernel",), ("kernel_1",)]
    assert empty == {}


def test_dict_attribute_access_reads_writes_and_deletes_keys():
    d = core.Dict(a=core.Param(jnp.ones(1)))
    assert d.a is d["a"]
    d.b = [1, 2]
    assert type(d["b"]) is core.List  # converted like d["b"] = [...]
    del d.a
    assert list(d) == ["b"]
    with pytest.raises(AttributeError) as info:
        d.missing  # noqa: B018
    assert str(info.value) == _errors.DICT_NO_KEY.format(key="missing", keys=["b"])
    with pytest.raises(AttributeError, match="no key 'gone'"):
        del d.gone
    assert "b" in dir(d)
    # methods keep their meaning; such keys are reached by indexing
    d["items"] = 3
    assert callable(d.items) and d["items"] == 3


def test_dict_attribute_writes_are_structural_changes():
    class M(core.Module):
        def __init__(self):
            self.d = {"w": core.Param(jnp.ones(1))}

    m = M()
    assert _paths(core.state(m)) == [("d", "w")]
    m.d.v = core.Param(jnp.zeros(2))  # must invalidate the cached structure
    assert _paths(core.state(m)) == [("d", "v"), ("d", "w")]
    del m.d.w
    assert _paths(core.state(m)) == [("d", "v")]
    assert m.d.v.value.shape == (2,)
