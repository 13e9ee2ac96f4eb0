"""Error types and the long messages ramie.core raises.

Every message names where the problem is (a Variable or attribute path), what
was expected, what was found, and how to fix it. Messages are module-level
constants so tests can assert on them and other packages can reuse them.
"""

from __future__ import annotations


class RamieError(Exception):
    """Base class of every error ramie raises on purpose."""


class FilterError(RamieError, ValueError):
    """A filter was malformed, or a set of filters left values unmatched."""


class GraphError(RamieError, ValueError):
    """A GraphDef and the States given with it do not fit together."""


class StateLeafError(RamieError, TypeError):
    """A Variable or State was given a value that is not an array."""


class TraceLeakError(RamieError, RuntimeError):
    """A Variable holds a tracer whose JAX transformation has already finished."""


class CapturedMutationError(RamieError, RuntimeError):
    """A transformed function assigned a traced value to an object it captured."""


class UnclassifiableAttributeError(RamieError, TypeError):
    """A Module attribute is neither state, a submodule, a container nor a static value."""


class UntrackedContainerError(RamieError, TypeError):
    """A Module would hold a list/dict subclass whose structural changes ramie cannot see."""


class StaleStructureError(RamieError, RuntimeError):
    """Verify mode found a cached structure that differs from the object graph (a bug)."""


class MutableStaticError(RamieError, TypeError):
    """A static (non-array) attribute is a mutable object hashed by identity."""


class ModuleInJaxError(RamieError, ValueError):
    """A Module was used where plain JAX needs arrays or pytrees."""


class RngStreamError(RamieError, AttributeError):
    """An Rngs object was asked for a stream it does not have."""


def format_path(path: tuple) -> str:
    """Render a path tuple the way every ramie message shows it: ``'linear1/kernel'``."""
    if not path:
        return "<root>"
    return "/".join(str(k) for k in path)


def format_paths(paths, limit: int = 20) -> str:
    """Render many paths, one per line, cutting the list after ``limit`` entries."""
    paths = list(paths)
    lines = [f"  - {p}" for p in paths[:limit]]
    if len(paths) > limit:
        lines.append(f"  ... and {len(paths) - limit} more")
    return "\n".join(lines)


LEFTOVER_PATHS = (
    "split(): {count} value(s) match none of the filters ({filters}), so they were left "
    "over:\n{paths}\nEvery value must go to exactly one State. Add a filter that catches "
    "them, e.g. end the filter list with `...` (Everything) to put the rest in a last State."
)

UNKNOWN_FILTER = (
    "{filter!r} is not a filter. A filter is a Variable type (e.g. Param), a tuple or list "
    "of filters (any of them), a string (a path part, a Variable's tag or its collection such "
    "as 'params'), All(...), Any(...), Not(...), PathContains(key), Everything or `...`, "
    "Nothing, True/False, or a callable (path, value) -> bool."
)

EVERYTHING_NOT_LAST = (
    "{fn}(): filter {position} of {count} is `...` (Everything), which matches every value, "
    "so the filters after it ({rest}) could never match anything. `...` (or True) may only "
    "be the last filter: {fn}(obj, {suggestion})."
)

DICT_NO_KEY = (
    "This Dict has no key {key!r} (read as the attribute `.{key}`); its keys are {keys}. "
    "Set it first (`d.{key} = value` or `d[{key!r}] = value`)."
)

VIEW_NOT_FOUND = (
    "{fn}(): no module in this {root} (among those `only` selects) has the attribute(s) "
    "{names}, so nothing would change. Check the spelling (view_info(model) lists the mode "
    "attributes), or pass raise_if_not_found=False."
)

RECURSIVE_MAP_CYCLE = (
    "recursive_map(): the {type_name} at '{path}' is reached again from inside itself. "
    "recursive_map maps children before their parent, so a cycle has no order to map in; "
    "break the cycle first, or use iter_graph to visit it."
)

PREFIX_UNMATCHED = (
    "prefix(): the {kind} at '{path}' matches none of the filters ({filters}). Every leaf "
    "needs a value: add a filter for it, or end the mapping with `...: value` for the rest."
)

CAPTURE_NO_MODULE = (
    "capture(): found no Module to collect from: {fn} is not a Module or a bound method of "
    "one, and none of its arguments is a Module. Pass the model (capture(model)) or a method "
    "(capture(model.encode))."
)

GRAPH_STATE_MIXED = (
    "merge(): GraphStates from unpack() carry their GraphDef; pass only GraphStates "
    "(merge(*unpack(model, ...))), or a GraphDef and plain States (merge(graphdef, state)). "
    "Found a {found} among them."
)

MERGE_MISSING_LEAF = (
    "merge(): the GraphDef expects {expected} at '{path}', but none of the {count} State(s) "
    "given has a value there. Pass every State that split() returned (e.g. merge(graphdef, "
    "params, rest)), or check that the State comes from an object of the same structure."
)

MERGE_EXTRA_LEAF = (
    "merge(): the State has a value at '{path}' ({found}) that the GraphDef has no place "
    "for. The GraphDef and the State come from objects of different structure; split the "
    "object you want to rebuild again, or remove that entry from the State."
)

MERGE_NOT_A_LEAF = (
    "merge(): expected {expected} at '{path}' but found a nested mapping with keys "
    "{keys}. The State's nesting does not match the GraphDef at this path."
)

MERGE_NOT_GRAPHDEF = (
    "merge() takes a GraphDef as its first argument (from split() or graphdef()); got {found}."
)

STATE_LEAF_TYPE = (
    "{where} holds a {found_type} ({found}); a Variable's value and a State's leaves must "
    "be arrays (jax.Array, numpy.ndarray), numbers, None, or lists/tuples/dicts of those. "
    "Keep static configuration as a plain Module attribute instead of inside a Variable."
)

TRACE_LEAK = (
    "A {kind} holds a tracer from a JAX transformation that has already finished: the "
    "tracer escaped its trace. This happens when a Variable of an object that was captured "
    "(closed over) by jax.jit/grad/vmap is assigned inside the transformed function. Pass "
    "the object to the function as an argument through a ramie transform "
    "(ramie.transforms.jit), or use split() before and update() after the jax transform."
)

CAPTURED_MUTATION = (
    "A {kind} ({found}) was assigned a traced value inside ramie.transforms.{transform}, but "
    "it was not passed to the transformed function: it belongs to an object captured from "
    "the enclosing scope (a closure or a global). Changes to captured objects cannot leave "
    "a transform and would leak tracers. Pass the object that holds it (e.g. the Module) as "
    "an argument, `{transform}(f)(model, ...)`, instead of closing over it."
)

UNCLASSIFIABLE = (
    "Cannot classify the attribute at '{path}' ({type_name}: {found}). A Module attribute "
    "must be a Variable, a Module, a jax/numpy array (treated as state), a list/tuple/dict "
    "of those, or a hashable static value (int, float, str, None, a type, a function, a "
    "tuple of those). Wrap array data in a Variable, or make the value hashable (e.g. a "
    "tuple instead of a set)."
)

UPDATE_NO_PARENT = (
    "update(): the State has a value at '{path}' but the object has nothing at "
    "'{parent}' to put it in. The State must come from an object of the same structure."
)

UPDATE_KIND_MISMATCH = (
    "update(): the State has a {found} at '{path}' but the object holds a {expected} "
    "there. Update with a State split from the same object (or one of the same structure)."
)

UPDATE_NOT_SETTABLE = (
    "{op}(): cannot {action} the value at '{path}': it sits inside a {container}, which "
    "cannot be changed in place. Store it in a Variable or in a list/dict attribute instead."
)

REPLACE_EXTRA_KEYS = (
    "replace_by_pure_dict(): the pure dict has entries the State does not have:\n{paths}\n"
    "Both must come from objects of the same structure."
)

REPLACE_MISSING_KEYS = (
    "replace_by_pure_dict(): the pure dict has no entry for these State paths:\n{paths}\n"
    "Give a value for every leaf of the State (or filter the State first with "
    "state.filter(...))."
)

NO_RNG_STREAM = (
    "Rngs has no stream '{name}' and no 'default' stream to fall back on; its streams are "
    "{streams}. Create the stream, e.g. Rngs({example}), or give a default seed: Rngs(0)."
)

BAD_RNG_NAME = (
    "Rngs stream name {name!r} is not allowed: stream names must be identifiers that do not "
    "start with '_' and are not Rngs methods ({reserved})."
)

BAD_RNG_SEED = (
    "Rngs stream '{name}' needs an int seed, a PRNG key (jax.random.key(...)) or raw "
    "uint32 key data of shape (..., 2); got {found}."
)

SET_ATTRIBUTES_NOT_FOUND = (
    "set_attributes(): no module in this {root}{which} has the attribute(s) {names}. Check "
    "the spelling, or pass raise_if_not_found=False to ignore modules without them."
)

METADATA_UNHASHABLE = (
    "Variable metadata {name!r} must be hashable (it becomes part of the static GraphDef); "
    "got a {type_name}. Use a tuple instead of a list, or a frozenset instead of a set."
)

ROOT_IS_A_LEAF = (
    "Cannot flatten a bare {type_name}: split/state/graphdef take a Module, or a tuple, "
    "list or dict of objects, and a bare Variable or array has no path to store it under "
    "in a State. Wrap it, e.g. split((variable,)), or put it in a Module."
)

UNTRACKED_CONTAINER = (
    "{where} was given a {type_name}. ramie caches each model's structure and sees its "
    "changes through the plain lists and dicts it converts to ramie.core.List / "
    "ramie.core.Dict; a {type_name} is a subclass it cannot convert without changing its "
    "behaviour, so changes to it could go unseen. Use a plain {base} instead{hint}."
)

UNTRACKED_HINTS = {
    "defaultdict": " (write `d.setdefault(key, []).append(x)` where you wrote `d[key].append(x)`)",
    "OrderedDict": " (plain dicts keep insertion order)",
}

UNTRACKED_IN_GRAPH = (
    "The {type_name} at '{path}' is a {base} ramie does not track (it was put there "
    "without going through a Module attribute or a ramie List/Dict, e.g. with "
    "object.__setattr__ or list.append(...) called on the class): changes to it would go "
    "unseen by the cached structure. Assign it as a Module attribute (`module.x = [...]`) "
    "or through a ramie container, which converts it."
)

STALE_STRUCTURE = (
    "RAMIE_CHECK_STRUCTURE: the cached structure of {root} no longer matches the objects:\n"
    "{changes}\nA structural change reached the object graph without being seen (not through "
    "a Module attribute, a ramie List/Dict, or Variable metadata), so split/state/update and "
    "nn.jit would have used a stale structure. If your code did not bypass tracking on "
    "purpose (e.g. list.append(module.layers, x)), this is a ramie bug: please report it "
    "with the code that made the change."
)

CONTAINER_CYCLE = (
    "The list/dict at '{path}' contains itself (again at '{inner}'). Modules may form "
    "cycles, but lists and dicts may not: a State could not be built from it. Hold the "
    "shared part in a Module and refer to the Module instead."
)

MUTABLE_STATIC = (
    "{where} holds a {type_name}: a mutable object hashed by identity. Non-array attributes "
    "are static: part of the cached structure and compiled into nn.jit's traces, and ramie "
    "cannot see a change made inside them (`obj.field = ...`), so compiled code would keep "
    "using the old values. Use an immutable value instead: a frozen dataclass "
    "(@dataclasses.dataclass(frozen=True)), a NamedTuple, or the fields as separate "
    "attributes (then `module.field = ...` is seen); if it holds state, make it a Module."
)

CLOSURE_READ = (
    "ramie.transforms.{transform}({fn}) read a {kind} ({found}){where} that is not reachable "
    "from its arguments: it was captured from the enclosing scope (a closure or a global), "
    "so its current value is frozen into the compiled function as a constant, and later "
    "changes to it (training steps, update(), ...) will not be seen. Pass the object that "
    "holds it as an argument. If a constant is what you want, silence this with "
    "warnings.filterwarnings('ignore', category=ramie.core.ClosureReadWarning). "
    "(Shown once per function.)"
)

MODULE_AS_JAX_VALUE = (
    "A {type_name} (a ramie Module) was used where JAX needs one array (jax.typeof, an "
    "abstract value, a primitive's operand). A Module is a pytree of arrays, not an array: "
    "pass it whole to a JAX transformation (`jax.jit(f)(model)`, `jax.grad(loss)(model)`, "
    "`jax.tree.map(fn, model)`), pass one of its arrays (`model.w.value`), or take its "
    "state (`nn.state(model)`)."
)

TRACER_ON_CAPTURED_MODULE = (
    "Module attribute '{type_name}.{name}' was assigned a traced value inside a plain JAX "
    "transformation (jax.jit, jax.grad, jax.lax.scan, ...), but this {type_name} was "
    "created outside it and captured by the function: the value can never leave the "
    "transformation (it would surface later as an UnexpectedTracerError). Use nn.jit (or "
    "another ramie transform) and pass the module as an argument, or split it first "
    "(`graphdef, state = nn.split(model)`), rebuild it inside with nn.merge and return the "
    "new state (nn.functional(model) does this for you)."
)

NO_METADATA = (
    "This {kind} has no metadata entry {name!r}; its metadata keys are {keys}. Pass a "
    "default (`get_metadata(name, None)`) or set it with `set_metadata({name}=...)`."
)

SET_METADATA_ARGS = (
    "{kind}.set_metadata() takes `(name, value)`, keyword arguments, or one mapping that "
    "replaces all metadata; got something else."
)

UNSAFE_ITEM_CAST = (
    "`v[...] = x` on a {kind} holding {dtype} would cast {found} to {dtype} and lose "
    "information; the Variable keeps its dtype under item assignment. Cast explicitly "
    "(`x.astype(v.dtype)`) or replace the value, dtype and all, with `v.value = x`."
)

NOT_STATIC = (
    "static(...) was given a {type_name}, which cannot be static: static values are part of "
    "the structure (hashed, compared, compiled into traces), so arrays, Variables, Modules "
    "and unhashable values must stay data. Use a tuple, a number, a string or a frozen "
    "dataclass, or drop the static(...) marker."
)
