"""Errors raised by ramie.transforms, and their messages (tests assert these)."""

from __future__ import annotations

import jax

from ramie.core import GraphError, RamieError
from ramie.core import format_paths as bullets  # noqa: F401  (re-exported for the transforms)


class StructureChangedError(GraphError):
    """An input object's structure changed inside a transform in a way that cannot leave it."""


class TransformArgumentError(RamieError, ValueError):
    """A transform was given axes, carries or arguments that do not fit the call."""


class CarryError(RamieError, TypeError):
    """A scan/loop carry changed its structure, shape or dtype between iterations."""


def keystr(path: tuple) -> str:
    """Render a key path into ``(args, kwargs)`` as Python would index it: ``args[0]['x']``."""
    text = jax.tree_util.keystr(path)
    if text.startswith("[0]"):
        return "args" + text[3:]
    if text.startswith("[1]"):
        return "kwargs" + text[3:]
    return text


STRUCTURE_CHANGED = (
    "ramie.transforms.{transform}: the structure of an input object changed inside the "
    "transformed function:\n{changes}\n"
    "A transform propagates new values (and newly sown Intermediates) back to your objects, "
    "but not structural changes such as replacing or deleting a submodule or attribute, or "
    "changing a static attribute (train()/eval() flip `deterministic` and "
    "`use_running_average`). Make such changes before calling the transformed function."
)

ALIASED_SPECS = (
    "ramie.transforms.{transform}: {what} is passed through two arguments with different "
    "{option}: {first}, {second}. One object has one value, so it must be mapped the same "
    "way wherever it appears: pass it once, or give every argument holding it the same "
    "{option}."
)

ARGNUM_TYPE = (
    "ramie.transforms.jit: static_argnums/donate_argnums must be ints (or a sequence of "
    "ints); found {found}."
)

ARGNUMS_SIGNATURE = (
    "ramie.transforms.jit: {option}={nums} but {name} accepts only {count} positional "
    "argument(s). Give indices of positional parameters (negative ones count from the end)."
)

ARGNAMES_SIGNATURE = (
    "ramie.transforms.jit: {option} names {names}, which {name} cannot take by keyword; "
    "its keyword parameters are {allowed}. Check the spelling, or use the *_argnums "
    "option for positional-only parameters."
)

STATIC_AND_DONATED = (
    "ramie.transforms.jit: {names} of {name} are both static and donated; a static argument "
    "is part of the compiled function, so it cannot be donated. Remove it from one of them."
)

IN_AXES_ARITY = (
    "ramie.transforms.{transform}: in_axes has {given} entries but the function was called "
    "with {count} positional argument(s). Give one axis per positional argument (a tuple of "
    "length {count}), or a single int/None for all of them."
)

CARRY_CHANGED = (
    "ramie.transforms.{transform}: the carry changed between iterations:\n{changes}\n"
    "A carry must keep the same structure, shapes and dtypes from one iteration to the "
    "next. Cast or reshape the value before returning it, or keep changing state out of "
    "the carry (scan it with an int axis instead)."
)

NO_CARRY = (
    "ramie.transforms.scan: in_axes must mark exactly one argument as `Carry`; found "
    "{count} in {in_axes!r}. Example: `scan(f, in_axes=(Carry, 0))` for f(carry, x)."
)

BROADCAST_MUTATED = (
    "ramie.transforms.vmap: {paths} had in_axes None (broadcast), but the function wrote "
    "values that differ per batch element into them. Give that state an axis with "
    "StateAxes (e.g. `StateAxes({{BatchStat: 0, ...: None}})`), or split the RNG stream with "
    "split_rngs so each copy has its own."
)

ARGNUMS_RANGE = (
    "ramie.transforms.{transform}: argnums={argnums} refers to argument {index}, but the "
    "function was called with {count} positional argument(s)."
)

HAS_AUX_OUTPUT = (
    "ramie.transforms.{transform}: has_aux=True needs the function to return a pair "
    "(value, aux); it returned a {found}."
)

JVP_ARITY = (
    "ramie.transforms.jvp: {primals} primals but {tangents} tangents; give one tangent per "
    "primal (for an object, a State holding a tangent for each differentiated leaf)."
)

JVP_MISSING_TANGENT = (
    "ramie.transforms.jvp: no tangent for '{path}' of primal {arg}; the tangent State of an "
    "object must hold every differentiated leaf (e.g. `jax.tree.map(jnp.ones_like, "
    "state(model, Param))`)."
)

CUSTOM_VJP_UNDEFINED = (
    "ramie.transforms.custom_vjp: {name} has no backward pass yet; call "
    "`{name}.defvjp(fwd, bwd)` before using it."
)

CUSTOM_VJP_BWD = (
    "ramie.transforms.custom_vjp: the bwd of {name} must return a tuple with one cotangent "
    "per differentiated argument ({count}); it returned {found}."
)

CUSTOM_VJP_MISSING = (
    "ramie.transforms.custom_vjp: the cotangent State returned by bwd has no entry for "
    "'{path}'; give a cotangent for every Param of the object."
)

STATE_AXES_UNMATCHED = (
    "ramie.transforms: no filter of the StateAxes matches '{path}' ({kind}); its filters "
    "are {filters}. Add a catch-all entry such as `...: 0` (or `...: None`)."
)

STATE_AXES_ON_ARRAY = (
    "ramie.transforms: StateAxes applies to ramie objects (Modules, Rngs); give a plain "
    "int/None axis for arrays and other pytrees."
)

SCAN_NEW_STATE = (
    "ramie.transforms.scan: the scanned function added new state (e.g. sow) to an input "
    "object. Each iteration must keep the same state structure; create or sow that state "
    "before the scan, or return the values as outputs (out_axes) instead."
)

SCAN_OUT_ARITY = (
    "ramie.transforms.scan: out_axes={out_axes!r} describes a tuple of outputs but the "
    "function returned {found}."
)

SCAN_OUT_NONE = (
    "ramie.transforms.scan: out_axes None is not supported for per-iteration outputs; use "
    "an int axis to stack them, or make the value part of the Carry."
)

BRANCH_STRUCTURE = (
    "ramie.transforms.{transform}: the branches leave the objects with different "
    "structures:\n{changes}\nEvery branch must make the same structural changes (e.g. sow "
    "the same Intermediates); sow in all branches or before the {transform}."
)
COMPILED_OTHER_STRUCTURE = (
    "The compiled function from {name}.lower(...).compile() was called with arguments of "
    "another structure than it was lowered for (objects, static values or donation "
    "differ): lower and compile again for these arguments, or call the jitted function "
    "itself, which compiles as needed."
)
