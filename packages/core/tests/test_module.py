"""Module behaviour: attributes, modes, traversal, sow, tracked containers."""

import jax.numpy as jnp
import pytest

from ramie import core
from ramie.core import _errors, extend


class Dropoutish(core.Module):
    def __init__(self):
        self.deterministic = False


class Normish(core.Module):
    def __init__(self):
        self.use_running_average = False
        self.mean = core.BatchStat(jnp.zeros(2))


class Net(core.Module):
    def __init__(self):
        self.drop = Dropoutish()
        self.layers = [Normish(), {"inner": Normish()}]
        self.config = 3


def test_train_and_eval_flip_every_submodule():
    net = Net()
    net.eval()
    assert net.drop.deterministic is True
    assert net.layers[0].use_running_average is True
    assert net.layers[1]["inner"].use_running_average is True
    assert not hasattr(net, "deterministic")  # only modules that have it
    net.train()
    assert net.drop.deterministic is False
    assert net.layers[1]["inner"].use_running_average is False


def test_eval_changes_the_graphdef_so_jitted_code_recompiles():
    net = Net()
    g_train = core.graphdef(net)
    net.eval()
    assert core.graphdef(net) != g_train


def test_set_attributes_and_missing_names():
    net = Net()
    net.set_attributes(config=5)
    assert net.config == 5
    with pytest.raises(AttributeError) as info:
        net.set_attributes(not_there=1)
    assert str(info.value) == _errors.SET_ATTRIBUTES_NOT_FOUND.format(
        root="Net", which="", names=["not_there"]
    )
    net.set_attributes(not_there=1, raise_if_not_found=False)
    assert not hasattr(net, "not_there")


def test_iter_modules_visits_shared_modules_once():
    net = Net()
    net.alias = net.drop
    paths = [p for p, _ in net.iter_modules()]
    assert paths == [(), ("drop",), ("layers", 0), ("layers", 1, "inner")]
    assert [n for n, _ in net.iter_children()] == ["drop", "alias"]


def test_sow_accumulates_and_rejects_a_different_kind():
    class M(core.Module):
        def __call__(self, x):
            self.sow(core.Intermediate, "h", x)
            return x

    m = M()
    m(jnp.ones(1))
    m(jnp.zeros(1))
    assert isinstance(m.h, core.Intermediate) and len(m.h.value) == 2
    assert float(m.h.value[1][0]) == 0.0

    m.taken = core.Param(jnp.ones(1))
    with pytest.raises(AttributeError, match="already holds a Param"):
        m.sow(core.Intermediate, "taken", jnp.ones(1))


def test_sow_with_custom_reduce():
    class M(core.Module):
        def __call__(self, x):
            self.sow(core.Intermediate, "total", x, reduce_fn=lambda a, b: a + b, init_fn=lambda: 0)

    m = M()
    m(jnp.ones(2))
    m(jnp.ones(2))
    assert float(m.total.value.sum()) == 4.0


def test_lists_and_dicts_become_tracked_containers():
    m = core.Module()
    m.items = [1, [2, 3], {"a": [4]}]
    m.table = {"x": [1]}
    m.pair = ([1], 2)
    assert type(m.items) is core.List and type(m.items[1]) is core.List
    assert type(m.items[2]) is core.Dict and type(m.items[2]["a"]) is core.List
    assert type(m.table) is core.Dict and type(m.table["x"]) is core.List
    assert type(m.pair[0]) is core.List
    assert m.items == [1, [2, 3], {"a": [4]}]  # still equal to the plain values


def test_mutating_tracked_containers_bumps_the_structure_version():
    m = core.Module()
    m.items = [core.Param(jnp.ones(1))]
    core.graphdef(m)  # walked: now tracked
    for mutate in [
        lambda: m.items.append(core.Param(jnp.ones(1))),
        lambda: m.items.pop(),
        lambda: m.items.insert(0, 1),
        lambda: m.items.__setitem__(0, 2),
        lambda: m.items.extend([3]),
        lambda: m.items.clear(),
    ]:
        before = extend.structure_version()
        mutate()
        assert extend.structure_version() > before


def test_untracked_objects_do_not_bump_the_version():
    before = extend.structure_version()
    for _ in range(3):
        Net()  # building new modules never invalidates other caches
    assert extend.structure_version() == before


def test_incrementing_a_variable_attribute_is_not_structural():
    class Counter(core.Module):
        def __init__(self):
            self.count = core.Variable(jnp.array(0))

    c = Counter()
    g = core.graphdef(c)
    before = extend.structure_version()
    c.count += 1
    assert extend.structure_version() == before
    assert core.graphdef(c) is g
    assert int(c.count.value) == 1


def test_repr_is_a_readable_tree():
    text = repr(Net())
    assert text.splitlines()[0] == "Net"
    assert "  drop: Dropoutish" in text
    assert "mean: BatchStat float32[2]" in text


def test_deepcopy_keeps_sharing_cycles_and_tracking():
    import copy

    net = Net()
    net.alias = net.drop
    net.me = net
    core.graphdef(net)
    dup = copy.deepcopy(net)
    assert dup.alias is dup.drop and dup.me is dup
    assert dup.layers[0].mean is not net.layers[0].mean
    assert type(dup.layers) is core.List
    g = core.graphdef(dup)
    assert g == core.graphdef(net)
    dup.layers.append(Normish())
    assert core.graphdef(dup) != g  # the copy's containers report changes too
