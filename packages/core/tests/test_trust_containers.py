"""Every list/dict reachable from a Module is tracked, whatever put it there (issue 11)."""

import collections

import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core


class M(core.Module):
    def __init__(self):
        self.d = {}
        self.h = {"a": core.Param(jnp.ones(1)), "b": core.Param(jnp.ones(2))}
        self.xs = []


def leaves(m) -> int:
    return len(core.state(m).flat_state())


def fresh_paths(m) -> list:
    core.clear_caches()
    return sorted(map(str, core.flatten(m).paths))


def test_the_list_setdefault_returns_is_tracked():
    m = M()
    assert leaves(m) == 2
    m.d.setdefault("k", []).append(core.Param(jnp.ones(2)))  # seen
    assert leaves(m) == 3
    m.d["k"].append(core.Param(jnp.ones(3)))  # was never seen
    assert leaves(m) == 4
    assert type(m.d["k"]) is core.List
    assert m.d.setdefault("k", None) is m.d["k"]  # present: returned as is


def test_a_defaultdict_is_refused_at_assignment_naming_the_attribute():
    m = M()
    leaves(m)
    with pytest.raises(core.UntrackedContainerError) as info:
        m.d = collections.defaultdict(list)
    assert str(info.value) == core._errors.UNTRACKED_CONTAINER.format(
        where="Module attribute 'M.d'",
        type_name="defaultdict",
        base="dict",
        hint=core._errors.UNTRACKED_HINTS["defaultdict"],
    )
    assert "d.setdefault(key, []).append(x)" in str(info.value)
    assert m.d == {}  # unchanged


@pytest.mark.parametrize(
    "make",
    [
        lambda: collections.OrderedDict(a=1),
        lambda: type("MyList", (list,), {})([1]),
        lambda: type("MyDict", (dict,), {})(a=1),
        lambda: core.State({"w": core.Param(jnp.ones(1))}),
    ],
)
def test_list_and_dict_subclasses_are_refused_everywhere(make):
    m = M()
    leaves(m)
    with pytest.raises(core.UntrackedContainerError, match="Module attribute 'M.other'"):
        m.other = make()
    with pytest.raises(core.UntrackedContainerError, match="Module attribute 'M.other'"):
        m.other = (1, [make()])  # inside a tuple/list
    with pytest.raises(core.UntrackedContainerError, match=r"ramie.core.List \(at 0\)"):
        m.xs.append(make())
    with pytest.raises(core.UntrackedContainerError, match=r"ramie.core.Dict \('k'\)|at 'k'"):
        m.d["k"] = make()
    with pytest.raises(core.UntrackedContainerError):
        m.d.update(k=make())
    with pytest.raises(core.UntrackedContainerError):
        m.__dict__["other"] = make()
    assert leaves(m) == 2


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.h.__delitem__("a"),  # del m.h['a']
        lambda m: m.h.pop("a"),
        lambda m: m.h.clear(),
        lambda m: m.h.popitem(),
    ],
)
def test_removing_from_a_dict_works_and_is_seen(edit):
    m = M()
    assert leaves(m) == 2
    edit(m)
    assert leaves(m) == len(m.h)
    assert sorted(map(str, core.flatten(m).paths)) == fresh_paths(m)


def _p(n=1):
    return core.Param(jnp.ones(n))


EDITS = {
    "append": lambda m: m.xs.append([_p()]),
    "insert": lambda m: m.xs.insert(0, {"k": [_p()]}),
    "extend": lambda m: m.xs.extend([[_p()], {"a": _p()}]),
    "iadd": lambda m: m.xs.__iadd__([[_p()]]),
    "slice": lambda m: m.xs.__setitem__(slice(0, 0), [[_p()], [_p()]]),
    "setitem": lambda m: m.d.__setitem__("k", [_p()]),
    "setdefault": lambda m: m.d.setdefault("k", {"z": []}),
    "update": lambda m: m.d.update({"k": [_p()]}, j={"x": []}),
    "ior": lambda m: m.d.__ior__({"k": [_p()]}),
    "dict_write": lambda m: m.__dict__.__setitem__("new", [_p()]),
    "dict_update": lambda m: vars(m).update(new={"a": [_p()]}),
    "dict_setdefault": lambda m: vars(m).setdefault("new", [_p()]),
    "dict_replace": lambda m: setattr(m, "__dict__", {"z": [[_p()]]}),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_every_way_in_converts_plain_containers_and_every_later_edit_is_seen(name):
    m = M()
    leaves(m)
    EDITS[name](m)
    core.flatten(m)

    def containers(x):
        if isinstance(x, (list, dict)):
            yield x
            for v in x.values() if isinstance(x, dict) else x:
                yield from containers(v)
        elif isinstance(x, tuple):
            for v in x:
                yield from containers(v)

    found = [c for v in vars(m).values() for c in containers(v)]
    assert found and all(type(c) in (core.List, core.Dict) for c in found)
    # every container that got in is tracked: a new Param in each is seen
    for i, c in enumerate(found):
        before = leaves(m)
        if isinstance(c, dict):
            c[f"p{i}"] = _p()
        else:
            c.append(_p())
        assert leaves(m) == before + 1, (name, i)
    assert sorted(map(str, core.flatten(m).paths)) == fresh_paths(m)


def test_writes_through_dunder_dict_bump_and_track_before_the_first_flatten_too():
    m = M()
    m.__dict__["early"] = [_p()]  # before any flatten: converted at the first walk
    assert leaves(m) == 3
    m.early.append(_p())
    assert leaves(m) == 4
    m.__dict__["w"] = _p(5)
    assert leaves(m) == 5
    del m.__dict__["w"]
    assert leaves(m) == 4
    m.__dict__.pop("early")
    assert leaves(m) == 2


def test_arrays_swapped_through_dunder_dict_keep_the_cache():
    m = M()
    m.raw = jnp.zeros(2)
    fg = core.flatten(m)
    m.__dict__["raw"] = jnp.ones(2)  # a new value, not a new structure
    assert core.flatten(m) is fg
    np.testing.assert_array_equal(core.state(m)["raw"], np.ones(2))


def test_a_plain_list_smuggled_in_past_tracking_is_an_error_naming_its_path():
    m = M()
    leaves(m)
    list.append(m.xs, [_p()])  # the list method, called on the class: bypasses tracking
    core.clear_caches()
    with pytest.raises(core.UntrackedContainerError) as info:
        core.flatten(m)
    assert str(info.value) == core._errors.UNTRACKED_IN_GRAPH.format(
        type_name="list", path="xs/0", base="list"
    )


def test_plain_containers_as_roots_are_still_fine():
    a, b = M(), M()
    g, s = core.split([a, {"b": b}])
    assert len(s.flat_state()) == 4
    assert type(core.merge(g, s)[1]).__name__ == "Dict"


def test_namedtuples_keep_their_type_and_are_checked():
    Pair = collections.namedtuple("Pair", "x y")
    m = M()
    m.pair = Pair([_p()], 1)
    assert type(m.pair) is Pair and type(m.pair.x) is core.List
    m.pair.x.append(_p())
    assert leaves(m) == 4
    with pytest.raises(core.UntrackedContainerError, match="M.pair"):
        m.pair = Pair(collections.OrderedDict(), 1)


def test_a_list_that_contains_itself_is_an_error_naming_both_paths():
    # found by the state machine (test_trust_state_machine): it was a RecursionError
    m = M()
    m.xs.append(_p())
    m.xs.append(m.xs)
    with pytest.raises(core.GraphError) as info:
        core.state(m)
    assert str(info.value) == core._errors.CONTAINER_CYCLE.format(path="xs", inner="xs/1")
    m.d["self"] = {"inner": m.d}
    m.xs.pop()
    with pytest.raises(core.GraphError, match="'d' contains itself"):
        core.state(m)


def test_modules_in_a_cycle_through_a_list_are_fine():
    m = M()
    m.xs.append(m)
    g, s = core.split(m)
    copy = core.merge(g, s)
    assert copy.xs[0] is copy
