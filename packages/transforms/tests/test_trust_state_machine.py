"""Stateful property test: random structural edits never leave a stale cached structure.

A Hypothesis ``RuleBasedStateMachine`` edits one object graph in every way the
object model allows (attributes, submodules, lists and dicts through every
mutating method, writes through ``__dict__``, sharing, cycles, deletions,
static attributes, raw arrays, Variable metadata) and interleaves those edits
with ``split``/``merge``/``update``/``state`` and ``jit`` calls. After every
step the cached flatten must equal a fresh walk, and a jitted function must
give the same outputs and mutations as the same function run eagerly.
"""

import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ramie import core
from ramie import transforms as tx

NAMES = st.sampled_from(["a", "b", "c", "d"])
STATICS = st.one_of(st.integers(-3, 3), st.sampled_from(["relu", "gelu"]), st.just((1, "x")))


class Node(core.Module):
    pass


def _walk_objects(root):
    """Every Module, List and Dict reachable from ``root`` (once each), in a stable order."""
    modules, lists, dicts, variables = [], [], [], []
    seen = set()

    def visit(x):
        if isinstance(x, core.Variable):
            if id(x) not in seen:
                seen.add(id(x))
                variables.append(x)
            return
        if not isinstance(x, (core.Module, list, dict, tuple)) or id(x) in seen:
            return
        seen.add(id(x))
        if isinstance(x, core.Module):
            modules.append(x)
            children = list(vars(x).values())
        elif isinstance(x, dict):
            dicts.append(x)
            children = list(x.values())
        else:
            if isinstance(x, list):
                lists.append(x)
            children = list(x)
        for c in children:
            visit(c)

    visit(root)
    return modules, lists, dicts, variables


def _step(m, x):
    """Reads every Variable and int static, bumps every BatchStat: eagerly as under jit."""
    total = x * 0.0
    for _, module in m.iter_modules():
        for value in vars(module).values():
            if type(value) is int:  # a static: compiled in, so a stale trace would differ
                total = total + value
    for ref in core.flatten(m).refs:
        v = ref if isinstance(ref, core.Variable) else None
        if v is not None:
            total = total + jnp.sum(v.value)
            if isinstance(v, core.BatchStat):
                v.value = v.value + x
    return total


_JITTED = tx.jit(_step)


def _same_structure(cached, fresh):
    assert cached.graphdef == fresh.graphdef
    assert cached.paths == fresh.paths
    for a, b in zip(cached.refs, fresh.refs, strict=True):
        if isinstance(a, core.Variable):
            assert a is b
        else:  # a raw array's slot: the same place in the same container
            assert a.key == b.key and core._verify._same_holder(a.holder, b.holder)


class GraphEdits(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.root = Node()
        self.counter = 0

    # -- helpers -----------------------------------------------------------
    def _new_value(self, data):
        self.counter += 1
        kind = data.draw(
            st.sampled_from(["param", "stat", "module", "list", "dict", "array", "tuple"])
        )
        n = 1 + self.counter % 3
        if kind == "param":
            return core.Param(jnp.full((n,), float(self.counter)))
        if kind == "stat":
            return core.BatchStat(jnp.full((n,), float(self.counter)))
        if kind == "module":
            child = Node()
            child.w = core.Param(jnp.full((n,), float(self.counter)))
            return child
        if kind == "list":
            return [core.Param(jnp.ones(n)), {"s": core.BatchStat(jnp.zeros(n))}]
        if kind == "dict":
            return {"p": core.Param(jnp.ones(n)), "l": []}
        if kind == "tuple":
            return (core.BatchStat(jnp.ones(n)), jnp.full((n,), 2.0), [core.Param(jnp.ones(n))])
        return jnp.full((n,), float(self.counter))

    def _existing(self, data):
        """A Module or Variable already in the graph (sharing), or the root (a cycle).

        Lists and dicts are not shared: one that ends up inside itself is refused
        (test_trust_containers covers that error).
        """
        modules, _, _, variables = _walk_objects(self.root)
        return data.draw(st.sampled_from(modules + variables))

    def _value(self, data):
        if data.draw(st.integers(0, 3)) == 0:
            return self._existing(data)
        return self._new_value(data)

    def _pick(self, data, which):
        objs = _walk_objects(self.root)[which]
        return data.draw(st.sampled_from(objs)) if objs else None

    # -- module edits ------------------------------------------------------
    @rule(data=st.data(), name=NAMES)
    def set_attribute(self, data, name):
        setattr(self._pick(data, 0), name, self._value(data))

    @rule(data=st.data(), name=NAMES, value=STATICS)
    def set_static(self, data, name, value):
        setattr(self._pick(data, 0), name, value)

    @rule(data=st.data(), name=NAMES)
    def write_through_dunder_dict(self, data, name):
        m = self._pick(data, 0)
        how = data.draw(st.sampled_from(["setitem", "update", "setdefault", "pop"]))
        d = vars(m)
        if how == "setitem":
            d[name] = self._value(data)
        elif how == "update":
            d.update({name: self._value(data)})
        elif how == "setdefault":
            got = d.setdefault(name, [])
            if isinstance(got, list):
                got.append(core.Param(jnp.ones(2)))
        else:
            d.pop(name, None)

    @rule(data=st.data(), name=NAMES)
    def delete_attribute(self, data, name):
        m = self._pick(data, 0)
        if name in vars(m):
            delattr(m, name)

    # -- list edits --------------------------------------------------------
    @precondition(lambda self: _walk_objects(self.root)[1])
    @rule(data=st.data())
    def edit_list(self, data):
        xs = self._pick(data, 1)
        op = data.draw(
            st.sampled_from(
                ["append", "insert", "extend", "iadd", "imul", "slice", "setitem"]
                + ["pop", "remove", "clear", "sort", "reverse", "delitem"]
            )
        )
        if op == "append":
            xs.append(self._value(data))
        elif op == "insert":
            xs.insert(data.draw(st.integers(-2, 2)), self._value(data))
        elif op == "extend":
            xs.extend([self._value(data), self._value(data)])
        elif op == "iadd":
            xs += [self._value(data)]
        elif op == "imul":
            xs *= 2  # every item now shared twice
        elif op == "slice":
            xs[0:1] = [self._value(data), self._value(data)]
        elif xs and op == "setitem":
            xs[data.draw(st.integers(0, len(xs) - 1))] = self._value(data)
        elif xs and op == "pop":
            xs.pop()
        elif xs and op == "remove":
            xs.remove(xs[0])
        elif op == "clear":
            xs.clear()
        elif op == "sort":
            xs.sort(key=lambda v: type(v).__name__)  # deterministic (not by id)
        elif op == "reverse":
            xs.reverse()
        elif xs and op == "delitem":
            del xs[0]

    # -- dict edits --------------------------------------------------------
    @precondition(lambda self: _walk_objects(self.root)[2])
    @rule(data=st.data(), key=NAMES)
    def edit_dict(self, data, key):
        d = self._pick(data, 2)
        op = data.draw(
            st.sampled_from(
                ["setitem", "setdefault", "update", "ior", "pop", "popitem", "clear", "delitem"]
            )
        )
        if op == "setitem":
            d[key] = self._value(data)
        elif op == "setdefault":
            got = d.setdefault(key, [])
            if isinstance(got, list):  # the returned list must be tracked
                got.append(core.Param(jnp.ones(2)))
        elif op == "update":
            d.update({key: self._value(data)})
        elif op == "ior":
            d |= {key: self._value(data)}
        elif op == "pop":
            d.pop(key, None)
        elif d and op == "popitem":
            d.popitem()
        elif op == "clear":
            d.clear()
        elif key in d and op == "delitem":
            del d[key]

    # -- variables -----------------------------------------------------------
    @precondition(lambda self: _walk_objects(self.root)[3])
    @rule(data=st.data(), tag=st.integers(0, 2))
    def change_metadata(self, data, tag):
        v = self._pick(data, 3)
        v.tag = tag

    # -- functional API and jit ------------------------------------------------
    @rule()
    def split_merge_update(self):
        graphdef, state = core.split(self.root)
        copy = core.merge(graphdef, state)
        assert core.graphdef(copy) == graphdef
        core.update(self.root, core.state(copy))
        params, rest = core.state(self.root, core.Param, ...)
        assert len(params.flat_state()) + len(rest.flat_state()) == len(state.flat_state())

    @rule(x=st.sampled_from([0.5, 2.0]))
    def jit_equals_eager(self, x):
        eager_copy = core.clone(self.root)
        expected = _step(eager_copy, jnp.float32(x))
        got = _JITTED(self.root, jnp.float32(x))
        np.testing.assert_allclose(got, expected, rtol=1e-5)
        after, eager_after = core.state(self.root), core.state(eager_copy)
        assert sorted(after.flat_state()) == sorted(eager_after.flat_state())
        for path, v in after.flat_state().items():
            np.testing.assert_allclose(
                np.asarray(getattr(v, "value", v)),
                np.asarray(getattr(eager_after.flat_state()[path], "value", v)),
                rtol=1e-5,
            )

    # -- after every step --------------------------------------------------------
    @invariant()
    def cached_flatten_equals_a_fresh_walk(self):
        _same_structure(core.flatten(self.root), core._graph.walk(self.root))


GraphEdits.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_graph_edits = GraphEdits.TestCase
