"""Straight-line Python builders generated once per structure.

Walking a GraphDef node by node costs a Python call per node on every
``merge``, and nesting leaves into States costs a dictionary walk per leaf on
every ``split``. Both depend only on the (cached, hashable) structure, so we
generate one flat function per structure the first time it is needed and
reuse it: the per-call work is then a single function call that runs
straight-line bytecode (dict displays, attribute stores).
"""

from __future__ import annotations

import itertools
import linecache
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from ._caches import BoundedCache
from ._containers import Dict, List, _rebuild_tuple
from ._module import _SET_TRACKED as SET_TRACKED
from ._nodes import ARRAY, DICT, LIST, MODULE, REF, STATIC, TUPLE, VAR
from ._state import State
from ._variables import Variable, _snapshot, make_variable

_SERIAL = itertools.count()


#: Generated builders, per structure (at most 1024; the oldest go first).
_CACHE = BoundedCache("builders", 1024)


def cached(key: Any, make: Callable[[], Callable]) -> Callable:
    """The builder stored under ``key``, generating it with ``make()`` on a miss."""
    return _CACHE.get_or_make(key, make)


rebuild_tuple = _rebuild_tuple


class NotALeaf(Exception):
    """A mapping sat where a leaf was expected (caught to give a clear error)."""


def _var(x, cls, md):
    if isinstance(x, Variable):
        return _snapshot(x)
    if isinstance(x, dict):
        raise NotALeaf
    return make_variable(cls, x, md)


def _raw(x):
    if isinstance(x, Variable):
        return x._value
    if isinstance(x, dict):
        raise NotALeaf
    return x


def _new_state(d: dict) -> State:
    s = dict.__new__(State)
    dict.update(s, d)
    return s


def _new_list(items: list) -> List:
    out = List()
    list.extend(out, items)
    return out


def _new_dict(d: dict) -> Dict:
    out = Dict()
    dict.update(out, d)
    return out


class _Gen:
    def __init__(self):
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {
            "_var": _var,
            "_raw": _raw,
            "_onew": object.__new__,
            "_st": SET_TRACKED,
            "_sv": Variable.__dict__["_value"].__set__,
            "_sm": Variable.__dict__["_metadata"].__set__,
            "_S": _new_state,
            "_list": _new_list,
            "_dict": _new_dict,
            "_tuple": rebuild_tuple,
            "_lext": list.extend,
            "_dupd": dict.update,
        }
        self.consts: dict[int, str] = {}

    def const(self, value: Any) -> str:
        if type(value) in (int, str, bool, float) or value is None:
            text = repr(value)
            if "inf" not in text and "nan" not in text:
                return text
        name = f"c{len(self.ns)}"
        self.ns[name] = value
        return name

    def compile(self, name: str, args: str) -> Callable:
        body = "\n".join("    " + line for line in self.lines) or "    pass"
        src = f"def {name}({args}):\n{body}\n"
        filename = f"<ramie generated {name} #{next(_SERIAL)}>"
        exec(compile(src, filename, "exec"), self.ns)
        fn = self.ns[name]
        # Keep the source where tracebacks look for it, for as long as the function lives.
        linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
        weakref.finalize(fn, linecache.cache.pop, filename, None)
        return fn


def object_builder(node: tuple) -> Callable[[Sequence], Any]:
    """A function ``build(leaves) -> object`` for one GraphDef node tree."""
    gen = _Gen()
    counters = {"leaf": 0, "obj": 0}

    def expr(n) -> str:
        code = n.code
        if code == VAR:
            i, j = counters["leaf"], counters["obj"]
            counters["leaf"] += 1
            counters["obj"] += 1
            cls, md = gen.const(n.cls), gen.const(n.metadata)
            # The common case (a Variable of the recorded kind) is inlined.
            gen.lines += [
                f"v = L[{i}]",
                f"if type(v) is {cls}:",
                f"    x{j} = _onew({cls}); _sv(x{j}, v._value); _sm(x{j}, v._metadata)",
                "else:",
                f"    x{j} = _var(v, {cls}, {md})",
            ]
            return f"x{j}"
        if code == MODULE:
            j = counters["obj"]
            counters["obj"] += 1
            gen.lines.append(f"x{j} = _onew({gen.const(n.cls)}); _st(x{j}, False)")
            items = [f"{gen.const(k)}: {expr(c)}" for k, c in n.attrs]
            if items:
                gen.lines.append(f"x{j}.__dict__.update({{{', '.join(items)}}})")
            return f"x{j}"
        if code == REF:
            return f"x{n.index}"
        if code == ARRAY:
            i = counters["leaf"]
            counters["leaf"] += 1
            return f"_raw(L[{i}])"
        if code == STATIC:
            return gen.const(n.value)
        if code == LIST or code == DICT:
            # Made empty first and filled after its items: a REF to it (sharing, or a
            # cycle through a Module) may occur among them.
            j = counters["obj"]
            counters["obj"] += 1
            if code == LIST:
                gen.lines.append(f"x{j} = _list(())")
                items = [expr(c) for c in n.items]
                if items:
                    gen.lines.append(f"_lext(x{j}, [{', '.join(items)}])")
            else:
                gen.lines.append(f"x{j} = _dict({{}})")
                items = [f"{gen.const(k)}: {expr(c)}" for k, c in n.items]
                if items:
                    gen.lines.append(f"_dupd(x{j}, {{{', '.join(items)}}})")
            return f"x{j}"
        if code == TUPLE:
            items = [expr(c) for c in n.items]
            return f"_tuple({gen.const(n.cls)}, [{', '.join(items)}])"
        raise AssertionError(f"unknown GraphDef node {n!r}")

    root = expr(node)
    gen.lines.append(f"return {root}")
    return gen.compile("build", "L")


def _trie(paths: Sequence[tuple], indices: Sequence[int]) -> dict:
    root: dict = {}
    for i in indices:
        path = paths[i]
        d = root
        for k in path[:-1]:
            d = d.setdefault(k, {})
        d[path[-1]] = i
    return root


def states_builder(
    paths: Sequence[tuple],
    classes: Sequence[type | None],
    assignment: Sequence[int] | None,
    count: int,
) -> Callable[[Sequence], list[State]]:
    """A function ``states(refs) -> [State, ...]`` copying each leaf into its State.

    ``refs[i]`` is a Variable of ``classes[i]`` (copied) or a raw-array slot
    (``classes[i] is None``, read through ``._value``); it goes to State
    ``assignment[i]`` (all to State 0 when ``assignment`` is None; -1 drops it).
    """
    gen = _Gen()
    groups: list[list[int]] = [[] for _ in range(count)]
    for i, path in enumerate(paths):
        k = 0 if assignment is None else assignment[i]
        if k < 0 or not path:
            continue
        groups[k].append(i)
        if classes[i] is None:
            gen.lines.append(f"x{i} = R[{i}]._value")
        else:
            c = gen.const(classes[i])
            gen.lines.append(
                f"r = R[{i}]; x{i} = _onew({c}); _sv(x{i}, r._value); _sm(x{i}, r._metadata)"
            )

    def expr(d: dict) -> str:
        items = [
            f"{gen.const(k)}: {expr(v) if isinstance(v, dict) else f'x{v}'}" for k, v in d.items()
        ]
        return f"_S({{{', '.join(items)}}})"

    gen.lines.append(f"return [{', '.join(expr(_trie(paths, g)) for g in groups)}]")
    return gen.compile("states", "R")


def state_gatherer(paths: Sequence[tuple]) -> Callable[[dict], list]:
    """A function ``gather(state) -> leaves`` reading every path, in order.

    It raises (KeyError, TypeError, IndexError) when a path is missing and
    returns ``None`` when the State has entries beyond ``paths``; the caller
    then works out a precise error message the slow way.
    """
    gen = _Gen()
    if any(not p for p in paths):  # the root itself is a leaf: no State key holds it
        gen.lines.append("raise KeyError(())")

    def walk(d: dict, node: str) -> None:
        # Each sub-State is read once into a local, then its entries from there.
        gen.lines.append(f"if len({node}) != {len(d)}: return None")
        for k, v in d.items():
            if isinstance(v, dict):
                child = f"t{len(gen.lines)}"
                gen.lines.append(f"{child} = {node}[{gen.const(k)}]")
                walk(v, child)
            else:
                gen.lines.append(f"l{v} = {node}[{gen.const(k)}]")

    walk(_trie(paths, range(len(paths))), "s")
    gen.lines.append(f"return [{', '.join(f'l{i}' for i in range(len(paths)))}]")
    return gen.compile("gather", "s")
