"""``jit``: jax.jit for functions of ramie objects, at the per-call cost of jax.jit.

Per call, on the fast path (positional arguments that are ramie objects or
arrays): the last call's objects recognised by id, the list of their leaf
values (the one the last call wrote, while no Variable was written since), the
compiled call, and the new values written back into the same Variables, all in
one Python function (``extend.fast_caller``). The graph is walked, and the
function traced, only when the structure of the arguments changes.
"""

from __future__ import annotations

import functools
import operator
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from ramie import core
from ramie.core import extend

from . import _argnums, _axes, _cache, _jit_aot
from . import _graphargs as ga

# Argument types that can never hold a ramie object: passed through as leaves. JAX's
# concrete array type joins on first sight (learning it by making an array here would
# start JAX's backend at import time).
_LEAF_TYPES = {type(np.zeros(())), np.ndarray, int, float, bool, complex, type(None)}


def _is_leaf_type(t: type) -> bool:
    if t in _LEAF_TYPES:
        return True
    if issubclass(t, jax.Array) and not issubclass(t, jax.core.Tracer):
        _LEAF_TYPES.add(t)
        return True
    return False


_GRAPH = ga.GRAPH_TYPES


class _WrongLayoutError(TypeError):
    """Raised while tracing a layout called with an object among its plain leaves.

    Modules are pytrees, so the per-call fast path can hand JAX a Module where
    the layout had an array; JAX then retraces instead of refusing it. Raising
    while tracing stops the call before anything runs (or is donated), and the
    fast path's ``except TypeError`` sends the call down the full path.
    """


_NO_DONATION, _DONATE_OBJECTS, _DONATE_MIXED = range(3)


class DonationMask(NamedTuple):
    """Which inputs of a call are donated: per object leaf, and per plain leaf."""

    values: tuple[bool, ...]  # per leaf of the argument objects, in ``FlatGraph.paths`` order
    leaves: tuple[bool, ...]  # per plain (array) leaf of the arguments


class StaticArg(NamedTuple):
    """A static argument: taken out before tracing, put back by ``_bind_statics``."""

    key: int | str  # its position, or its keyword
    value: Any


class Restructured(NamedTuple):
    """The compiled call's result, second item, when values alone do not say it all.

    The traced function returns ``(changed, payload)``: ``changed`` the new leaf
    values (a ``Written`` of those that changed, None when none did, or the
    list of all), ``payload`` the user's output. When the function added Variables (``sow``),
    returned objects, or the call has shardings, ``changed`` is a tuple of all
    new values and the payload is wrapped in this (a rare, slower path).
    """

    payload: Any
    graphdef: Any  # the objects' new GraphDef, or None when unchanged
    meta: Any  # ``export``'s marker: None when the output holds no objects


class Written:
    """The new values of some leaves (the compiled call's ``changed``), and their positions.

    A pytree whose positions are static (aux data): the compiled function
    returns only the values, and each call gets back the *same* ``positions``
    tuple object from JAX's output structure, so ``FlatGraph.write_at`` finds
    the leaves to write by identity instead of per call (measured: a dict
    ``{position: value}`` of 339 leaves cost ~20 µs more per deep-model step).
    """

    __slots__ = ("positions", "values")

    def __init__(self, positions: tuple[int, ...], values: Sequence):
        self.positions = positions
        self.values = values


jax.tree_util.register_pytree_node(
    Written, lambda w: (w.values, w.positions), lambda positions, values: Written(positions, values)
)


class Layout:
    """Everything static about one call shape, interned: one object per distinct content.

    Each layout owns the ``jax.jit`` of the traced function with the layout
    bound to it (``jitted``). Interning makes equal layouts the same object, so
    a re-walked but unchanged structure reuses the compiled function.
    """

    __slots__ = (
        "graphdef",
        "spec",
        "statics",
        "dmask",
        "mode",
        "jitted",
        "invoke",
        "__weakref__",
    )

    def __init__(self, graphdef, spec, statics, dmask):
        self.graphdef = graphdef
        self.spec = spec
        self.statics = statics
        self.dmask = dmask
        self.mode = _mode(dmask)
        self.jitted = None
        # ``invoke(values, leaves)``: the compiled call on the objects' values and the
        # plain leaves, arranged into the donated and kept groups (see ``_invoker``).
        self.invoke = None


class _Signature:
    """How to pick objects and leaves out of positional arguments of given types."""

    __slots__ = ("objs", "leaves", "nobjs", "positions")

    def __init__(self, types: tuple):
        self.positions = tuple(i for i, t in enumerate(types) if issubclass(t, _GRAPH))
        rest = tuple(i for i, t in enumerate(types) if not issubclass(t, _GRAPH))
        self.nobjs = len(self.positions)
        self.objs = _picker(self.positions)
        self.leaves = _picker(rest)


def _picker(positions: tuple) -> Callable[[tuple], tuple]:
    if not positions:
        return lambda args: ()
    if len(positions) == 1:
        i = positions[0]
        return lambda args: (args[i],)
    return operator.itemgetter(*positions)


_GENERAL = object()  # a type signature that needs the general path


# The last positional call of a jitted function is an ``extend.FastCall``. Its objects
# are recognised by identity: ``same(args)`` compares the ids of the object arguments
# with theirs, which is valid while they all live, and the entry is dropped (by
# weakref callbacks, ``_Extra.refs``) as soon as one dies, so an id can never be
# reused by another object while it is there. The FlatGraph is held weakly: it holds
# the objects' Variables and the containers of their raw arrays, so holding it would
# keep a model in a reference cycle alive.
class _Extra(NamedTuple):
    """jit's own part of its last call (``FastCall.extra``)."""

    objs: Callable  # picks the argument objects (a tuple) out of the arguments
    layout: Any  # kept alive with the call (its compiled function is the call's invoke)
    refs: tuple  # weak references to the objects, with ``forget`` callbacks


def _same_objects(n: int, positions: tuple[int, ...], objs: tuple) -> Callable[[tuple], bool]:
    """``same(args)``: ``n`` arguments, and ``args[p]`` is ``objs[k]`` for each ``positions[k]``.

    One and two objects (a model; a model and its optimizer) get a closure that
    compares ids directly: measured ~110 ns per call against ~510 ns for
    building and comparing a tuple of ids, on every step of a training loop.
    """
    if len(positions) == 1:
        (i,), (a,) = positions, map(id, objs)
        return lambda args: len(args) == n and id(args[i]) == a
    if len(positions) == 2:
        (i, j), (a, b) = positions, map(id, objs)
        return lambda args: len(args) == n and id(args[i]) == a and id(args[j]) == b
    pick, ids = operator.itemgetter(*positions), tuple(map(id, objs))
    return lambda args: len(args) == n and tuple(map(id, pick(args))) == ids


def _remember(last: list, n: int, sig: _Signature, objs: tuple, fg, layout) -> None:
    """Keep this call as the last one, dropped as soon as one of its objects dies."""

    def forget(_ref: weakref.ref) -> None:
        last[0] = extend.NO_FAST_CALL

    last[0] = extend.FastCall(
        same=_same_objects(n, sig.positions, objs),
        graph=weakref.ref(fg),
        invoke=layout.invoke,
        rest=sig.leaves,
        extra=_Extra(sig.objs, layout, tuple(weakref.ref(o, forget) for o in objs)),
    )


class _Jitted:
    """A function compiled with ``jax.jit`` that takes and updates ramie objects."""

    def __init__(self, fun: Callable, **options: Any):
        """``options`` are ``jit``'s keyword arguments (see ``jit``)."""
        argnums = _argnums.resolve(
            fun,
            options.pop("static_argnums", None),
            options.pop("static_argnames", None),
            options.pop("donate_argnums", None),
            options.pop("donate_argnames", None),
        )
        in_shardings = options.pop("in_shardings", None)
        out_shardings = options.pop("out_shardings", None)
        jit_kwargs = options
        functools.update_wrapper(self, fun)
        self.fun = fun
        self._on_read = extend.closure_read_hook(fun, "jit")  # warns once per function
        self.static_argnums = argnums.static_nums
        self.static_argnames = argnums.static_names
        self.donate_argnums = argnums.donate_nums
        self.donate_argnames = argnums.donate_names
        self._donates = bool(self.donate_argnums or self.donate_argnames)
        self.in_shardings = in_shardings
        self.out_shardings = out_shardings
        self._jit_kwargs = jit_kwargs
        self._sharded = in_shardings is not None or out_shardings is not None
        # Per tuple of argument types: how to split the arguments (at most MAX_SIGNATURES).
        self._signatures = _cache.Bounded(MAX_SIGNATURES)
        # Compiled layouts, at most MAX_LAYOUTS per function (least recently used out),
        # and per FlatGraph (weakly) the layout of each argument signature (weakly).
        self._layouts = _cache.LRU(MAX_LAYOUTS)
        self._by_graph = _cache.ByObject()
        if self.static_argnums or self.static_argnames:
            self._signatures = _AlwaysGeneral()

    # The traced function, with its ``layout`` bound (see _make_jit). Without donation,
    # or when exactly the objects' values are donated (argument 0), ``a, b`` are
    # (values, leaves); with a mixed donation, the donated and the kept such pairs
    # (plain tuples: JAX flattens a NamedTuple argument more slowly on every call).
    #
    # It returns a plain pair ``(changed, payload)`` (see ``Restructured``): JAX
    # rebuilds a plain tuple without calling Python, and the caller unpacks it by name.
    def _inner(self, layout, a, b):
        if layout.mode != _DONATE_MIXED:
            values, leaves = a, b
        else:
            values, leaves = _interleave(layout.dmask, a, b)
        if any(map(ga.is_graph, jax.tree_util.tree_leaves(leaves, is_leaf=ga.is_graph))):
            # The fast path passed an object where this layout has plain leaves (Modules
            # are pytrees, so JAX took it): stop before running; the caller falls back.
            raise _WrongLayoutError("an object where the layout has plain leaves")
        fun = _bind_statics(self.fun, layout.statics) if layout.statics else self.fun
        traced = ga.call_traced(
            "jit", fun, layout.graphdef, layout.spec, values, leaves, self._on_read
        )
        new_values = traced.values
        if traced.graphdef is not None or traced.meta is not None or self._sharded:
            # A tuple, not a list: the fast path writes a list back by itself, and
            # this one may not fit the objects (``sow`` added Variables).
            return tuple(new_values), Restructured(traced.payload, traced.graphdef, traced.meta)
        donated = layout.dmask.values if layout.dmask else (False,) * len(values)
        keep = tuple(
            i
            for i, (new, old, gone) in enumerate(zip(new_values, values, donated, strict=True))
            if gone or new is not old
        )
        if len(keep) == len(values):
            return new_values, traced.payload
        if not keep:  # None: JAX rebuilds it without calling Python
            return None, traced.payload
        return Written(keep, [new_values[i] for i in keep]), traced.payload

    def _make_jit(self, layout, in_shardings=None, out_shardings=None):
        # One jax.jit per layout, with the layout bound rather than passed as a
        # static argument: JAX's C++ dispatch then has no static argument to hash.
        kwargs = dict(self._jit_kwargs)
        if in_shardings is not None:
            kwargs["in_shardings"] = in_shardings
        if out_shardings is not None:
            kwargs["out_shardings"] = out_shardings
        return jax.jit(
            functools.partial(self._inner, layout),
            donate_argnums=(0,) if layout.mode != _NO_DONATION else (),
            **kwargs,
        )

    def caller(self) -> Callable:
        """The function ``jit`` returns: ``extend.fast_caller``'s, over ``slow`` below.

        The most common call, the same objects as last time plus arrays (in a
        training loop: the same model and optimizer every step, donated or
        not), runs in that one function: recognised before any signature
        lookup, the current values handed to the compiled call, a full list of
        new values written back. ``other`` writes a partial result (a
        ``Written``) or finishes a restructured one; ``slow`` looks up the
        signature and layout (tracing on a new one) and remembers the call.
        Being a plain function, it binds as a method like the function it wraps.
        """
        signatures = self._signatures
        signature = self._signature
        general = self._call_general
        layout_for = self._layout_positional
        finish = self._finish
        flatten = extend.flatten
        by_graph = self._by_graph
        # id(fg) -> Held(weakref(fg), {signature: weakref(layout)})
        graph_layouts = by_graph._items
        last = [extend.NO_FAST_CALL]

        def other(extra: _Extra, fg, changed, payload, args: tuple) -> Any:
            if type(payload) is Restructured:
                return finish(changed, payload, fg, extra.objs(args))
            fg.write_at(changed.positions, changed.values)  # a Written
            return payload

        def slow(args: tuple, kwargs: dict) -> Any:
            sig = signatures.get(tuple(map(type, args))) if not kwargs else _GENERAL
            if sig is None:
                sig = signature(args)
            if sig is _GENERAL:
                return general(args, kwargs)
            objs = sig.objs(args)
            fg = flatten(objs) if objs else _EMPTY_GRAPH
            entry = graph_layouts.get(id(fg))
            layouts = entry.value if entry is not None and entry.ref() is fg else None
            layout_ref = layouts.get(sig) if layouts is not None else None
            layout = layout_ref() if layout_ref is not None else None
            if layout is None:
                layout = layout_for(sig, args, fg)
                if layouts is None:
                    layouts = {}
                    by_graph.put(fg, layouts)
                layouts[sig] = weakref.ref(layout)
            if objs:
                _remember(last, len(args), sig, objs, fg, layout)
            changed, payload = layout.invoke(fg.values(), sig.leaves(args))
            return finish(changed, payload, fg, objs)

        # JAX refuses an argument (e.g. an object now where an array was) with a
        # TypeError before running (or donating) anything: ``slow`` then sorts the
        # arguments out, and re-raises an error of the function itself.
        retry = (TypeError, core.ModuleInJaxError)
        call = functools.wraps(self.fun)(extend.fast_caller(last, slow, other, retry))
        call._ramie_jit = self  # type: ignore[attr-defined]
        return call

    def _run(self, layout, fg, objs, values, leaves):
        changed, payload = layout.invoke(values, leaves)
        return self._finish(changed, payload, fg, objs)

    @staticmethod
    def _finish(changed, payload, fg, objs):
        """Write the compiled call's new values back; return the user's output."""
        if type(payload) is not Restructured:
            if type(changed) is Written:
                fg.write_at(changed.positions, changed.values)
            elif changed is not None:
                fg.set_values(changed)
            return payload
        if payload.graphdef is None:
            fg.set_values(changed)
        else:
            ga.propagate(fg, objs, payload.graphdef, changed)
        if payload.meta is None:
            return payload.payload
        return ga.import_(payload.meta, payload.payload, objs)

    def _signature(self, args: tuple):
        types = tuple(map(type, args))
        if all(_is_leaf_type(t) or issubclass(t, _GRAPH) for t in types):
            sig = _Signature(types)
        else:
            sig = _GENERAL
        self._signatures.put(types, sig)
        return sig

    def _layout_positional(self, sig: _Signature, args: tuple, fg) -> Layout:
        slots = tuple(
            sig.positions.index(i) if i in sig.positions else -1 for i in range(len(args))
        )
        spec = ga.CallSpec(_ARGS_TREEDEFS(len(args)), slots)
        dmask = self._donation_mask(fg, slots, [i for i, s in enumerate(slots) if s < 0])
        return self._intern(fg, spec, (), dmask, slots, sig.objs(args))

    def _intern(self, fg, spec, statics, dmask, slots, objs=()) -> Layout:
        key = (fg.graphdef, spec, statics, dmask)
        layout = self._layouts.get(key)
        if layout is None:
            layout = Layout(fg.graphdef, spec, statics, dmask)
            layout.jitted = self._jit_for(layout, fg, slots, dmask, objs)
            layout.invoke = _invoker(layout.jitted, layout.mode, dmask)
            self._layouts.put(key, layout)
        return layout

    def _donation_mask(self, fg, slots, leaf_args) -> DonationMask | None:
        if not self.donate_argnums:
            return None
        donated = _argnums.at_call(self.donate_argnums, len(slots))
        donated_objs = {slots[i] for i in donated if slots[i] >= 0}
        return DonationMask(
            values=_donated_values(fg, donated_objs),
            leaves=tuple(i in donated for i in leaf_args),
        )

    def _jit_for(self, layout, fg, slots, dmask, objs):
        if slots is None or not self._sharded:  # shardings apply on the positional path
            return self._make_jit(layout)
        a, b = _inner_shardings(self.in_shardings, fg, objs, layout.spec, dmask)
        values = None
        if self.in_shardings is not None:  # new values keep the inputs' placement
            # a tuple, as ``_inner`` returns them on this path
            values = tuple(a if dmask is None else _interleave(dmask, a, b).values)
        payload = Restructured(payload=self.out_shardings, graphdef=None, meta=None)
        return self._make_jit(layout, (a, b), (values, payload))

    # -- general path: nested containers, kwargs, static arguments ---------------
    def _call_general(self, args: tuple, kwargs: dict) -> Any:
        return self._run(*self.general_layout(args, kwargs))

    def general_layout(self, args: tuple, kwargs: dict) -> tuple:
        """``(layout, fg, objs, values, leaves)`` of a call, as ``_run`` takes them."""
        donated = None
        if self._donates:
            nums = _argnums.at_call(self.donate_argnums, len(args))
            donated = [a for i, a in enumerate(args) if i in nums]
            donated += [v for k, v in kwargs.items() if k in self.donate_argnames]
        static_nums = _argnums.at_call(self.static_argnums, len(args))
        statics = tuple(StaticArg(i, args[i]) for i in sorted(static_nums))
        statics += tuple(StaticArg(k, kwargs[k]) for k in self.static_argnames if k in kwargs)
        if statics:
            args = tuple(a for i, a in enumerate(args) if i not in static_nums)
            kwargs = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
        ex = ga.Extracted((args, kwargs))
        fg = ex.fg
        dmask = None
        if donated is not None:
            dset = ga.Extracted((donated, {}))
            ids = {id(o) for o in dset.objs}
            donated_objs = {i for i, o in enumerate(ex.objs) if id(o) in ids}
            leaf_ids = {id(x) for x in dset.leaves}
            dmask = DonationMask(
                values=_donated_values(fg, donated_objs),
                leaves=tuple(id(x) in leaf_ids for x in ex.leaves),
            )
        layout = self._intern(fg, ex.spec, statics, dmask, None)
        return layout, fg, ex.objs, fg.values(), ex.leaves


class _AlwaysGeneral(dict):
    def get(self, key, default=None):
        return _GENERAL

    def put(self, key, value) -> None:
        pass


@functools.lru_cache(maxsize=64)
def _ARGS_TREEDEFS(n: int):
    return jax.tree_util.tree_structure(((0,) * n, {}))


#: How many compiled call layouts (argument structure, static arguments, donation)
#: each jitted function keeps; the least recently used is dropped beyond it (and
#: compiled again if it comes back). ``clear_caches()`` drops them all.
MAX_LAYOUTS = 64
#: How many argument type signatures (tuples of argument types) each jitted function
#: remembers; the oldest is dropped beyond it (and worked out again if it comes back).
MAX_SIGNATURES = 64
_EMPTY_GRAPH = extend.flatten(())


def _root(path: tuple) -> int:
    """The index of the argument object a leaf path starts in (its first key)."""
    return path[0]


def _donated_values(fg, donated_objs: set) -> tuple[bool, ...]:
    """Per leaf of ``fg``: whether it is donated (its object is, and it is no PRNG key).

    A PRNG key is a few bytes, so donating it saves nothing; and a donated leaf must
    come back out of the compiled call even when unchanged, which for a key (an
    unchanged ``Rngs`` key, every step) costs JAX a Python-side rebuild per call.
    """
    return tuple(
        _root(p) in donated_objs and not _is_key(v)
        for p, v in zip(fg.paths, fg.values(), strict=True)
    )


def _is_key(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _taker(positions: tuple[int, ...]) -> Callable[[Sequence], tuple]:
    """A function picking ``positions`` out of a sequence, as a tuple, at C speed."""
    if not positions:
        return lambda items: ()
    if len(positions) == 1:
        i = positions[0]
        return lambda items: (items[i],)
    return operator.itemgetter(*positions)


@functools.lru_cache(maxsize=256)
def _takers(mask: tuple[bool, ...]) -> tuple[Callable, Callable]:
    """The pickers of the masked and of the unmasked items of a sequence."""
    return (
        _taker(tuple(i for i, m in enumerate(mask) if m)),
        _taker(tuple(i for i, m in enumerate(mask) if not m)),
    )


def _partition(dmask: DonationMask, values, leaves) -> tuple[tuple, tuple]:
    """The donated and the kept inputs of a call, each a plain ``(values, leaves)`` pair.

    Plain tuples, not ``ga.Leaves``: they are the compiled function's arguments, and
    JAX flattens a NamedTuple more slowly on every call (measured: +1 µs per step).
    Every group is a tuple, so each call has the same pytree structure.
    """
    dv, kv = _takers(dmask.values)
    dl, kl = _takers(dmask.leaves)
    return (dv(values), dl(leaves)), (kv(values), kl(leaves))


def _invoker(jitted: Callable, mode: int, dmask: DonationMask | None) -> Callable:
    """``invoke(values, leaves)``: ``jitted`` called with the inputs in its groups."""
    if mode != _DONATE_MIXED:  # the values (all donated, or none) and the plain leaves
        return jitted
    dv, kv = _takers(dmask.values)
    dl, kl = _takers(dmask.leaves)
    return lambda values, leaves: jitted((dv(values), dl(leaves)), (kv(values), kl(leaves)))


def _merge(mask, donated, kept) -> list:
    d, k = iter(donated), iter(kept)
    return [next(d) if m else next(k) for m in mask]


def _interleave(dmask: DonationMask, donated: tuple, kept: tuple) -> ga.Leaves:
    """The inputs back in order from ``_partition``'s two ``(values, leaves)`` pairs."""
    donated, kept = ga.Leaves(*donated), ga.Leaves(*kept)
    return ga.Leaves(
        _merge(dmask.values, donated.values, kept.values),
        _merge(dmask.leaves, donated.leaves, kept.leaves),
    )


def _bind_statics(fun, statics):
    """``fun`` with the static arguments (removed before tracing) put back in place."""
    positional = [s for s in statics if type(s.key) is int]
    named = {s.key: s.value for s in statics if type(s.key) is str}

    def bound(*args, **kwargs):
        args = list(args)
        for s in positional:
            args.insert(s.key, s.value)
        return fun(*args, **kwargs, **named)

    return bound


def _inner_shardings(in_shardings, fg, objs, spec, dmask):
    """Shardings of the inner (donated, kept) arguments from per-argument ones."""
    slots = spec.slots
    per_arg = (
        tuple(in_shardings)
        if isinstance(in_shardings, (tuple, list))
        else (in_shardings,) * len(slots)
    )
    appearances = [(slots[i], i, s) for i, s in enumerate(per_arg) if slots[i] >= 0]
    values = _axes.leaf_specs(fg, appearances, _leaf_sharding)
    _axes.check_aliasing(fg, objs, spec, appearances, values, _leaf_sharding, "jit", "in_shardings")
    leaves = tuple(s for i, s in enumerate(per_arg) if slots[i] < 0)
    if _mode(dmask) != _DONATE_MIXED:  # the same containers as _Jitted._run passes
        return values, leaves
    return _partition(dmask, values, leaves)


def _mode(dmask: DonationMask | None) -> int:
    if dmask is None:
        return _NO_DONATION
    if all(dmask.values) and not any(dmask.leaves):
        return _DONATE_OBJECTS
    return _DONATE_MIXED


def _leaf_sharding(spec, path, ref=None):
    if spec is None or isinstance(spec, jax.sharding.Sharding):
        return spec
    node = spec
    for k in path:
        node = node[k]
    return node.value if isinstance(node, core.Variable) else node


def jit(
    fun: Callable | None = None,
    *,
    static_argnums: int | Sequence[int] | None = None,
    static_argnames: str | Sequence[str] | None = None,
    donate_argnums: int | Sequence[int] | None = None,
    donate_argnames: str | Sequence[str] | None = None,
    in_shardings: Any = None,
    out_shardings: Any = None,
    **jit_kwargs: Any,
) -> Any:
    """``jax.jit`` for functions that take and mutate ramie objects.

    Arguments may be Modules, Rngs, Variables, any nesting of them with
    arrays, or anything ``jax.jit`` accepts. Every mutation made inside
    (parameters, BatchNorm statistics, RNG counters, optimizer steps, newly
    sown Intermediates) is written back into the caller's objects, and
    references shared between arguments stay shared. Use as ``@jit`` or
    ``@jit(...)``.

    ``static_argnums``/``static_argnames`` (and ``donate_*``) are resolved as
    ``jax.jit`` resolves them: given one of the pair, the other is inferred
    from the signature (so a static name also applies when the argument is
    passed by position); numbers are checked, sorted and de-duplicated, and a
    negative number counts from the end of each call's positional arguments.
    Each jitted function keeps at most ``MAX_LAYOUTS`` (64) compiled call
    layouts (argument structures, static values), dropping the least recently
    used; it holds the argument objects only weakly. ``clear_caches()``
    empties every cache.

    ``donate_argnums``/``donate_argnames`` donate every leaf of the objects
    (or arrays) at those positions; ``in_shardings`` gives per positional
    argument a ``Sharding`` (for all of an object's leaves) or a State of
    shardings; ``out_shardings`` applies to an output holding no objects.

    The jitted function also has JAX's ahead-of-time stages for ramie
    arguments: ``.trace(...)``, ``.lower(...)`` (``.compile()`` it) and
    ``.eval_shape(...)``.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.transforms import jit
    >>> class Counter(core.Module):
    ...     def __init__(self):
    ...         self.n = core.Variable(jnp.array(0))
    >>> @jit
    ... def tick(c, k):
    ...     c.n.value = c.n.value + k
    ...     return c.n.value * 10
    >>> c = Counter()
    >>> int(tick(c, 2)), int(c.n.value)
    (20, 2)
    """
    options = dict(
        static_argnums=static_argnums,
        static_argnames=static_argnames,
        donate_argnums=donate_argnums,
        donate_argnames=donate_argnames,
        in_shardings=in_shardings,
        out_shardings=out_shardings,
        **jit_kwargs,
    )
    if fun is None:
        return functools.partial(jit, **options)
    return _jit_aot.with_stages(_Jitted(fun, **options).caller())
