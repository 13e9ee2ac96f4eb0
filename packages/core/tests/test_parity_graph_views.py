"""view / view_info / with_attributes and Module.set_attributes(*filters)."""

import jax.numpy as jnp
import pytest

from ramie import core
from ramie.core import _errors


class Drop(core.Module):
    def __init__(self):
        self.deterministic = False
        self.rate = 0.5


class Norm(core.Module):
    def __init__(self):
        self.scale = core.Param(jnp.ones(2))
        self.mean = core.BatchStat(jnp.zeros(2))
        self.use_running_average = False


class Net(core.Module):
    def __init__(self):
        self.norm = Norm()
        self.blocks = [Drop(), Drop()]
        self.head = core.Param(jnp.ones((2, 2)))


def test_view_sets_modes_on_new_modules_sharing_the_variables():
    net = Net()
    train = core.view(net, deterministic=False, use_running_average=False)
    evaluate = core.view(net, deterministic=True, use_running_average=True)
    assert [b.deterministic for b in evaluate.blocks] == [True, True]
    assert evaluate.norm.use_running_average is True
    assert [b.deterministic for b in train.blocks] == [False, False]
    assert net.norm.use_running_average is False  # the original is unchanged
    assert evaluate.norm.scale is net.norm.scale is train.norm.scale
    assert evaluate.head is net.head and evaluate is not net
    # a step through one view is seen by the other
    train.norm.mean.value = jnp.full(2, 5.0)
    assert evaluate.norm.mean.value.tolist() == [5.0, 5.0]


def test_view_only_selects_modules_by_filter():
    net = Net()
    v = core.view(net, only=core.PathContains(0), deterministic=True)
    assert [b.deterministic for b in v.blocks] == [True, False]


def test_view_refuses_an_attribute_no_module_has():
    with pytest.raises(AttributeError) as info:
        core.view(Net(), determinstic=True)
    assert str(info.value) == _errors.VIEW_NOT_FOUND.format(
        fn="view", root="Net", names=["determinstic"]
    )
    v = core.view(Net(), determinstic=True, deterministic=True, raise_if_not_found=False)
    assert v.blocks[0].deterministic is True


def test_view_info_lists_mode_attributes_by_class():
    assert core.view_info(Net()) == (
        "view(model, **modes) can set (mode attributes, by Module class):\n"
        "  Norm (norm): use_running_average=False\n"
        "  Drop (blocks/0, blocks/1): deterministic=False"
    )
    net = Net()
    net.blocks[1].deterministic = True
    assert "deterministic=(mixed: ['False', 'True'])" in core.view_info(net)
    assert core.view_info(core.Module()).endswith(
        "(no Module here has a mode attribute: deterministic, use_running_average, decode, "
        "training)"
    )


def test_with_attributes_sets_any_attribute_and_keeps_sharing():
    net = Net()
    net.alias = net.blocks[0]
    new = core.with_attributes(net, rate=0.1)
    assert [b.rate for b in new.blocks] == [0.1, 0.1] and net.blocks[0].rate == 0.5
    assert new.alias is new.blocks[0]
    assert core.graphdef(new) != core.graphdef(net)
    with pytest.raises(AttributeError, match=r"with_attributes\(\): no module in this Net"):
        core.with_attributes(net, nope=1)


def test_set_attributes_with_filters_changes_only_selected_modules():
    net = Net()
    net.set_attributes(Drop, rate=0.2)
    assert [b.rate for b in net.blocks] == [0.2, 0.2]
    net.set_attributes(core.PathContains(1), deterministic=True)
    assert [b.deterministic for b in net.blocks] == [False, True]
    with pytest.raises(AttributeError) as info:
        net.set_attributes(Norm, rate=0.3)
    assert str(info.value) == _errors.SET_ATTRIBUTES_NOT_FOUND.format(
        root="Net", which=f" matching {Norm!r}", names=["rate"]
    )
    net.set_attributes(deterministic=False)  # no filter: every module, as before
    assert [b.deterministic for b in net.blocks] == [False, False]
