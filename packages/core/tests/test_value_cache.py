"""A FlatGraph's kept list of leaf values (``_valuecache``): used only while true.

``FlatGraph.current_values()`` hands out the list the graph last read or wrote
instead of reading every Variable again. A stale list would silently feed old
values to a jitted step, so: every way of writing a value refuses it, lists of
graphs sharing Variables forget each other, a replaced array is not kept alive,
and no code in core writes a value without saying so (source check).
"""

from __future__ import annotations

import ast
import gc
import inspect
import weakref

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ramie.core as core
from ramie.core import _valuecache, extend


class Pair(core.Module):
    def __init__(self):
        self.a = core.Param(jnp.zeros(2))
        self.b = core.BatchStat(jnp.zeros(2))


class Outer(core.Module):
    def __init__(self):
        self.left = Pair()
        self.right = Pair()


def _as_list(values):
    return [np.asarray(v).tolist() for v in values]


def test_the_kept_list_is_handed_out_until_a_write():
    m = Pair()
    fg = extend.flatten(m)
    first = fg.current_values()
    assert fg.current_values() is first  # kept: no Variable read again
    assert fg.values() == first and fg.values() is not first  # values() is a fresh list
    m.a.value = jnp.ones(2)
    assert _as_list(fg.current_values()) == [[1.0, 1.0], [0.0, 0.0]]


def _set(m):
    m.a.value = jnp.full(2, 7.0)


def _setitem(m):
    m.a[...] = 7.0


def _set_value(m):
    m.a.set_value(jnp.full(2, 7.0))


def _private_slot(m):
    m.a._value = jnp.full(2, 7.0)


def _update(m):
    s = core.state(m)
    s["a"].value = jnp.full(2, 7.0)
    core.update(m, s)


def _update_partial(m):
    core.update(m, {"a": jnp.full(2, 7.0)})


def _other_graph(m):
    holder = [m]  # a different root, so another FlatGraph over the same Variables
    other = extend.flatten(holder)
    other.set_values([jnp.full(2, 7.0), jnp.zeros(2)])


def _other_graph_write_at(m):
    other = extend.flatten([m])
    other.write_at((0,), [jnp.full(2, 7.0)])


WRITES = [
    _set,
    _setitem,
    _set_value,
    _private_slot,
    _update,
    _update_partial,
    _other_graph,
    _other_graph_write_at,
]


@pytest.mark.parametrize("write", WRITES, ids=lambda f: f.__name__.strip("_"))
def test_every_way_of_writing_a_value_refuses_the_kept_list(write):
    m = Pair()
    fg = extend.flatten(m)
    fg.current_values()
    assert fg._cache is not None
    write(m)
    assert _as_list(fg.current_values()) == [[7.0, 7.0], [0.0, 0.0]]
    assert _as_list(fg.values()) == [[7.0, 7.0], [0.0, 0.0]]


def test_own_writes_keep_the_list_and_positions_patch_it():
    m = Pair()
    fg = extend.flatten(m)
    fg.set_values([jnp.ones(2), jnp.full(2, 2.0)])
    kept = fg._cache
    assert kept is not None and _as_list(fg.current_values()) == [[1.0, 1.0], [2.0, 2.0]]
    positions = (1,)
    fg.write_at(positions, [jnp.full(2, 3.0)])
    assert fg._cache is not kept  # patched into a copy: a list handed out never changes
    assert _as_list(kept) == [[1.0, 1.0], [2.0, 2.0]]
    assert _as_list(fg.current_values()) == [[1.0, 1.0], [3.0, 3.0]]
    fg.set_values([jnp.full(2, 4.0)], [0])
    assert _as_list(fg.current_values()) == [[4.0, 4.0], [3.0, 3.0]]
    assert float(m.a.value[0]) == 4.0 and float(m.b.value[0]) == 3.0


def test_write_all_keeps_the_list_it_is_handed_and_copies_anything_else():
    m = Pair()
    fg = extend.flatten(m)
    handed = [jnp.ones(2), jnp.full(2, 2.0)]
    fg.write_all(handed)
    assert fg.current_values() is handed
    assert float(m.a.value[0]) == 1.0 and float(m.b.value[0]) == 2.0
    fg.write_all(handed)  # again, with the list already kept
    assert fg.current_values() is handed
    as_tuple = (jnp.full(2, 3.0), jnp.full(2, 4.0))
    fg.write_all(as_tuple)  # not a list: kept as a list copy, so calls see one type
    kept = fg.current_values()
    assert type(kept) is list and _as_list(kept) == [[3.0, 3.0], [4.0, 4.0]]
    # The write itself zips without strict=True: a list of the wrong length must be
    # refused before anything is written.
    with pytest.raises(ValueError, match="expected 2 values, got 1"):
        fg.write_all([jnp.zeros(2)])
    with pytest.raises(ValueError, match="expected 2 values, got 3"):
        fg.write_all([jnp.zeros(2)] * 3)
    assert float(m.a.value[0]) == 3.0 and float(m.b.value[0]) == 4.0
    assert _as_list(fg.current_values()) == [[3.0, 3.0], [4.0, 4.0]]


def test_graphs_sharing_variables_forget_each_others_lists():
    outer = Outer()
    whole, part = extend.flatten(outer), extend.flatten(outer.left)
    whole.current_values()
    part.current_values()
    part.set_values([jnp.ones(2), jnp.ones(2)])
    assert whole._cache is None  # forgotten, not just refused: it held the old arrays
    assert _as_list(whole.current_values())[:2] == [[1.0, 1.0], [1.0, 1.0]]
    whole.set_values([jnp.full(2, 5.0)] * 4)
    assert part._cache is None
    assert _as_list(part.current_values()) == [[5.0, 5.0], [5.0, 5.0]]


def test_a_replaced_array_is_not_kept_alive_by_a_list():
    m = Pair()
    fg = extend.flatten(m)
    old = jnp.arange(2.0) + 10
    fg.set_values([old, jnp.zeros(2)])
    assert fg.current_values()[0] is old
    gone = weakref.ref(old)
    del old
    core.update(m, {"a": jnp.zeros(2)})  # e.g. restoring a checkpoint after training
    gc.collect()
    assert gone() is None


def test_graphs_with_raw_array_slots_never_keep_a_list():
    m = Pair()
    m.raw = core.Dict(x=jnp.zeros(1))
    fg = extend.flatten(m)
    fg.current_values()
    assert fg._cache is None
    m.raw["x"] = jnp.ones(1)
    assert float(fg.values()[-1][0]) == 1.0
    assert float(extend.flatten(m).current_values()[-1][0]) == 1.0


def test_a_structural_change_gives_no_values():
    m = Pair()
    fg = extend.flatten(m)
    fg.current_values()
    m.c = core.Param(jnp.zeros(1))
    assert fg.current_values() is None


OPS = st.lists(
    st.tuples(
        st.sampled_from(["own", "own_at", "other", "set", "update", "read"]), st.integers(0, 3)
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_current_values_always_match_the_variables(ops):
    """Any mix of own writes, another graph's writes, eager writes and reads."""
    outer = Outer()
    whole, part = extend.flatten(outer), extend.flatten(outer.left)
    variables = [outer.left.a, outer.left.b, outer.right.a, outer.right.b]
    for step, (op, i) in enumerate(ops):
        new = jnp.full(2, float(step))
        if op == "own":
            whole.set_values([new + k for k in range(4)])
        elif op == "own_at":
            whole.write_at((i,), [new])
        elif op == "other":
            part.set_values([new, new])
        elif op == "set":
            variables[i].value = new
        elif op == "update":
            core.update(outer, {"right": {"b": new}})
        got = whole.current_values()
        assert _as_list(got) == _as_list(v.value for v in variables)
        assert _as_list(part.current_values()) == _as_list(v.value for v in variables[:2])


# -- no code in core writes a Variable's value without saying so ---------------------
# Every function in core that writes a Variable's value slot, and why that is safe for
# the kept lists. A new write site fails this test until it calls _valuecache.written()
# after writing (or writes through FlatGraph.set_values) and is added here.
WRITERS = {
    ("_variables", "Variable.__init__"): "a new Variable: in no FlatGraph yet",
    ("_variables", "Variable.value"): "the setter calls written()",
    ("_variables", "Variable.replace"): "a new Variable",
    ("_variables", "_snapshot"): "a new Variable",
    ("_variables", "make_variable"): "a new Variable",
    ("_variables", "_register.unflatten"): "a new Variable (pytree unflatten)",
    ("_api", "_update"): "update() calls written() after it, in a finally",
    ("_api", "_write_leaf"): "only called by _update",
    ("_flatgraph", "FlatGraph.set_values"): "calls written() after a raw-slot write",
    ("_flatgraph", "FlatGraph.write_all"): "draws tickets around the write (own list)",
    ("_flatgraph", "FlatGraph._write_some"): "draws tickets around the write (own list)",
    ("_fastcall", "caller.call"): "write_all's write, inlined: tickets around it",
    ("_codegen", "states_builder"): "generated code fills new Variables",
    ("_codegen", "object_builder.expr"): "generated code fills new Variables",
}

_SLOT_WRITERS = {"_set_value", "_VALUE_SET", "_sv"}


def _value_writes(tree: ast.AST) -> set[str]:
    """Qualified names of the functions in ``tree`` that write a Variable's value slot."""
    found: set[str] = set()

    def visit(node, scope):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, (*scope, child.name))
                continue
            if _writes_value(child):
                found.add(".".join(scope))
            visit(child, scope)

    visit(tree, ())
    return found


def _writes_value(node: ast.AST) -> bool:
    if isinstance(node, ast.Name) and node.id in _SLOT_WRITERS and isinstance(node.ctx, ast.Load):
        return True
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return "_sv(" in node.value  # generated source
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "object.__setattr__":
        name = node.args[1] if len(node.args) > 1 else None
        return isinstance(name, ast.Constant) and name.value == "_value"
    return False


def test_every_function_in_core_that_writes_a_value_is_accounted_for():
    found = set()
    for name in core._LAYERS:
        module = __import__(f"ramie.core.{name}", fromlist=["_"])
        for qualname in _value_writes(ast.parse(inspect.getsource(module))):
            if qualname:  # module level: the aliases themselves
                found.add((name, qualname))
    assert found == set(WRITERS), (
        "A function in ramie.core writes a Variable's value slot without being listed in "
        "WRITERS: call _valuecache.written() after the write (so kept value lists are "
        "refused), then add it with the reason it is safe."
    )


def test_written_draws_a_ticket_so_a_kept_list_is_refused():
    m = Pair()
    fg = extend.flatten(m)
    fg.current_values()
    _valuecache.written()
    assert fg._kept() is None and fg._cache is None


def test_a_ticket_drawn_by_any_write_refuses_the_list_even_if_not_forgotten():
    """The race ``forget_others`` can lose (a list kept while a write finished) is caught."""
    m = Pair()
    fg = extend.flatten(m)
    kept = fg.current_values()
    assert fg.current_values() is kept
    _valuecache.draw()  # a write finished elsewhere, and its forget did not reach fg
    assert fg._cache is kept and fg._kept() is None
    assert fg.current_values() is not kept
