"""data / static markers, Data / Static annotations, Pytree and dataclass (issue 14)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core
from ramie.core import _errors


class Foo(core.Pytree):
    def __init__(self):
        self.data_attr = core.data(42)  # a leaf
        self.static_attr = "hello"  # static


def test_data_makes_a_scalar_a_leaf_and_static_keeps_it_structure():
    foo = Foo()
    assert [int(x) for x in jax.tree.leaves(foo)] == [42]
    assert isinstance(foo.data_attr, jax.Array) and int(foo.data_attr + 1) == 43
    assert core.graphdef(foo).paths == (("data_attr",),)
    doubled = jax.tree.map(lambda x: x * 2, foo)
    assert int(doubled.data_attr) == 84 and doubled.static_attr == "hello"


def test_data_reaches_inside_containers_and_leaves_objects_alone():
    p = core.Param(jnp.ones(2))
    m = core.Module()
    assert core.data(p) is p and core.data(m) is m
    out = core.data({"a": [1, 2.5], "b": (True, p)})
    assert [type(x) for x in out["a"]] == [type(jnp.asarray(1))] * 2
    assert out["b"][1] is p and bool(out["b"][0]) is True


def test_a_data_list_of_modules_is_tracked_like_any_list():
    class Net(core.Module):
        def __init__(self):
            self.layers = core.data([core.Module(), core.Module()])
            self.sizes = core.data([3, 4])

    net = Net()
    assert type(net.layers) is core.List
    assert [int(x) for x in jax.tree.leaves(net)] == [3, 4]


def test_static_turns_lists_into_tuples_and_refuses_state():
    class M(core.Module):
        def __init__(self):
            self.n = core.static(3)
            self.sizes = core.static([2, [3, 4]])

    m = M()
    assert m.sizes == (2, (3, 4)) and jax.tree.leaves(m) == []
    assert core.graphdef(m).paths == ()
    for bad in (jnp.ones(2), np.ones(2), core.Param(jnp.ones(2)), core.Module(), {"a": 1}):
        with pytest.raises(core.MutableStaticError) as info:
            core.static(bad)
        assert str(info.value) == _errors.NOT_STATIC.format(type_name=type(bad).__name__)


def test_static_follows_the_mutable_static_rule():
    class Config:  # hashed by identity, mutable attributes
        scale = 2.0

    with pytest.raises(core.MutableStaticError) as info:
        core.static(Config())
    assert "Config" in str(info.value)


class Annotated(core.Pytree):
    count: core.Data[int]
    sizes: core.Static[list]

    def __init__(self, count, sizes):
        self.count = count
        self.sizes = sizes


def test_data_and_static_annotations_apply_on_every_assignment():
    a = Annotated(3, [1, 2])
    assert isinstance(a.count, jax.Array) and a.sizes == (1, 2)
    assert [int(x) for x in jax.tree.leaves(a)] == [3]
    a.count = 5  # later assignments too
    assert isinstance(a.count, jax.Array) and int(a.count) == 5
    with pytest.raises(core.MutableStaticError):
        a.sizes = jnp.ones(2)


def test_pytree_is_a_module_for_every_tool():
    foo = Foo()
    assert isinstance(foo, core.Module)
    graphdef, state = core.split(foo)
    assert int(state["data_attr"]) == 42
    assert int(core.merge(graphdef, state).data_attr) == 42


@core.dataclass
class Point(core.Pytree):
    x: core.Data[float]
    w: core.Param[jax.Array]
    name: str = "p"
    tags: core.Static[list] = dataclasses.field(default_factory=list)


def test_dataclass_pytrees_from_nnx_style_fields():
    p = Point(1.0, core.Param(jnp.ones(2)), tags=["a"])
    assert dataclasses.is_dataclass(p) and p.tags == ("a",) and p.name == "p"
    assert [x.tolist() for x in jax.tree.leaves(p)] == [1.0, [1.0, 1.0]]
    paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(p)[0]]
    assert paths == [".x", ".w.value"]
    q = jax.tree.map(lambda v: v + 1, p)
    assert type(q) is Point and float(q.x) == 2.0 and type(q.w) is core.Param
    assert p != Point(1.0, core.Param(jnp.ones(2)))  # eq=False: identity, like Modules
    assert len({p, q}) == 2


def test_dataclass_refuses_classes_that_are_not_modules():
    with pytest.raises(TypeError) as info:
        core.dataclass(type("Plain", (), {}))
    assert "Plain" in str(info.value) and "dataclasses.dataclass" in str(info.value)


@core.dataclass
class Fields(core.Pytree):
    count: int = core.data()
    sizes: list = core.static(default=(1,))
    rate: float = core.data(default=2.0)
    note: str = core.static(default="x", metadata={"doc": "kept"})


def test_data_and_static_without_a_value_are_dataclass_fields():
    f = Fields(3, sizes=[4, 5])
    assert [float(x) for x in jax.tree.leaves(f)] == [3.0, 2.0]
    assert f.sizes == (4, 5) and f.note == "x"
    assert isinstance(f.count, jax.Array) and isinstance(f.rate, jax.Array)
    fields = {x.name: x for x in dataclasses.fields(Fields)}
    assert fields["count"].metadata["ramie_kind"] == "data"
    assert dict(fields["note"].metadata) == {"doc": "kept", "ramie_kind": "static"}


def test_a_value_and_field_keywords_together_are_refused():
    with pytest.raises(TypeError) as info:
        core.data(3, default=4)
    assert str(info.value) == (
        "data(value, ...) takes no keywords; ['default'] are dataclass field options: "
        "write `data(default=value, ...)` for a field with a default."
    )
    with pytest.raises(TypeError):
        core.static("a", init=False)
