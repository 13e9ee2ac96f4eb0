"""Shared lists and dicts keep their sharing through split/merge, clone and update.

NNX keeps a container held by two Modules as one object; ramie used to give
back two copies (issue 14). The property test draws graphs whose Modules share
containers and compares which paths reach the same object, before and after,
with a traversal written here (it does not trust ramie's GraphDef).
"""

import jax.numpy as jnp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie import core


class Holder(core.Module):
    def __init__(self, box):
        self.box = box


class Top(core.Module):
    def __init__(self, box):
        self.a = Holder(box)
        # the tracked container (a plain dict became a Dict when assigned)
        self.b = Holder(self.a.box)


@pytest.mark.parametrize(
    "make",
    [
        lambda: core.Dict(w=core.Param(jnp.ones(2))),
        lambda: core.List([core.Param(jnp.ones(2))]),
        lambda: {"w": core.Param(jnp.ones(2))},  # a plain dict: tracked once assigned
    ],
    ids=["Dict", "List", "dict"],
)
def test_a_container_held_by_two_modules_stays_one_container(make):
    top = Top(make())
    assert top.a.box is top.b.box
    graphdef, state = core.split(top)
    merged = core.merge(graphdef, state)
    assert merged.a.box is merged.b.box
    assert merged.a.box is not top.a.box
    cloned = core.clone(top)
    assert cloned.a.box is cloned.b.box
    # a change through one holder is seen through the other, as before the split
    key = 0 if isinstance(merged.a.box, list) else "w"
    merged.a.box[key] = core.Param(jnp.zeros(3))
    assert merged.b.box[key].value.shape == (3,)
    # the shared leaves appear once in the State, at the first path
    assert [p for p in state.flat_state()] == [("a", "box", key)]


def test_update_round_trip_through_a_shared_container():
    top = Top(core.Dict(w=core.Param(jnp.ones(2))))
    state = core.state(top)
    state["a"]["box"]["w"].value = jnp.full(2, 7.0)
    core.update(top, state)
    assert top.b.box["w"].value.tolist() == [7.0, 7.0]


def test_a_container_reached_again_through_a_module_is_shared_not_a_cycle():
    holder = Holder(None)
    box = core.Dict(m=holder)
    holder.box = box
    outer = Holder(box)
    merged = core.clone(outer)
    assert merged.box["m"].box is merged.box


def test_a_container_that_contains_itself_is_still_an_error():
    m = Holder(core.List([core.Param(jnp.ones(1))]))
    m.box.append(m.box)
    with pytest.raises(core.GraphError) as info:
        core.split(m)
    assert str(info.value) == core._errors.CONTAINER_CYCLE.format(path="box", inner="box/1")


# -- property: any sharing of containers survives split/merge -----------------------
@st.composite
def shared_graphs(draw):
    n_mod = draw(st.integers(1, 4))
    n_box = draw(st.integers(1, 3))
    n_var = draw(st.integers(1, 4))
    # each container: a list or a dict, holding Variables (by index) and Modules
    boxes = [
        (
            draw(st.sampled_from(["list", "dict"])),
            draw(
                st.lists(st.tuples(st.sampled_from(["var", "mod"]), st.integers(0, 9)), max_size=3)
            ),
        )
        for _ in range(n_box)
    ]
    # each module: attribute -> a container, a Variable or a Module, by index
    attrs = [
        draw(
            st.dictionaries(
                st.sampled_from("abc"),
                st.tuples(st.sampled_from(["box", "var", "mod"]), st.integers(0, 9)),
                max_size=3,
            )
        )
        for _ in range(n_mod)
    ]
    return n_mod, n_var, boxes, attrs


def _build(description):
    n_mod, n_var, boxes, attrs = description
    variables = [core.Param(jnp.full((1,), float(i))) for i in range(n_var)]
    modules = [Holder(None) for _ in range(n_mod)]
    made = []
    for kind, items in boxes:
        values = [variables[i % n_var] if t == "var" else modules[i % n_mod] for t, i in items]
        made.append(core.List(values) if kind == "list" else core.Dict(enumerate(values)))
    pools = {"box": made, "var": variables, "mod": modules}
    for module, spec in zip(modules, attrs, strict=True):
        del module.box
        for name, (t, i) in spec.items():
            setattr(module, name, pools[t][i % len(pools[t])])
    root = Holder(None)
    root.box = core.List(modules)
    return root


def _reachable(root):
    """``{path: object}`` for every Module, container and Variable, first path first."""
    out, seen = {}, set()

    def visit(x, path):
        if isinstance(x, core.Variable):
            out[path] = x
            return
        if not isinstance(x, (core.Module, list, dict)):
            return
        out[path] = x
        if id(x) in seen:
            return
        seen.add(id(x))
        items = (
            vars(x).items()
            if isinstance(x, core.Module)
            else (x.items() if isinstance(x, dict) else enumerate(x))
        )
        for k, v in list(items):
            visit(v, path + (k,))

    visit(root, ())
    return out


def _sharing(root):
    reach = _reachable(root)
    groups = {}
    for path, obj in reach.items():
        groups.setdefault(id(obj), []).append(path)
    return sorted(sorted(g, key=repr) for g in groups.values())


@settings(max_examples=60, deadline=None)
@given(shared_graphs())
def test_any_sharing_of_containers_survives_split_and_merge(description):
    root = _build(description)
    expected = _sharing(root)
    merged = core.merge(*core.split(root))
    assert _sharing(merged) == expected
    assert _sharing(core.clone(root)) == expected
    # merged objects are new ones: nothing is shared with the original
    originals = {id(o) for o in _reachable(root).values()}
    assert not originals & {id(o) for o in _reachable(merged).values()}
