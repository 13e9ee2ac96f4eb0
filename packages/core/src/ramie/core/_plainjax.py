"""Clear errors when a Module meets plain JAX transformations.

Modules are pytrees (see ``_pytree``), so ``jax.jit(f)(model)`` works on a
rebuilt copy. Two cases still raise errors that name the Module and say what
to use instead: a Module used where JAX needs one array (``jax.typeof``), and
a Module captured by a plain ``jax.jit`` function that is assigned a traced
value (it could never leave the transformation).

JAX has no public hook for either, so this uses two JAX internals, each
guarded: when they are missing, JAX's own errors appear instead.
"""

from __future__ import annotations

from typing import Any

from . import _errors

try:  # JAX internals: the aval registry and the current trace
    from jax._src import core as _jax_core

    _AVALS = _jax_core.pytype_aval_mappings
    _TRACE_CTX = _jax_core.trace_ctx
    _EVAL_TRACE = _jax_core.EvalTrace
except (ImportError, AttributeError):  # pragma: no cover - other JAX versions
    _AVALS = _TRACE_CTX = _EVAL_TRACE = None


def _refuse_as_jax_value(module: Any):
    raise _errors.ModuleInJaxError(
        _errors.MODULE_AS_JAX_VALUE.format(type_name=type(module).__name__)
    )


def register(cls: type) -> None:
    """Make JAX raise ModuleInJaxError when an instance of ``cls`` is used as one array."""
    if _AVALS is not None:
        _AVALS[cls] = _refuse_as_jax_value


def outside_any_trace() -> bool:
    """True when no JAX transformation is tracing (top-level, eager code).

    >>> import jax
    >>> from ramie.core._plainjax import outside_any_trace
    >>> seen = []
    >>> _ = jax.jit(lambda x: seen.append(outside_any_trace()) or x)(1.0)
    >>> outside_any_trace(), seen
    (True, [False])
    """
    if _TRACE_CTX is None:  # pragma: no cover
        return False
    return isinstance(_TRACE_CTX.trace, _EVAL_TRACE)


def tracer_is_dead(x) -> bool:
    """True when ``x`` is a tracer whose transformation is no longer running.

    Outside every transformation no tracer is alive. Inside one, a tracer is
    alive when its trace is the current trace or one of its parents. JAX has no
    public API for this; on a JAX without these internals, nothing is reported.
    """
    trace = getattr(x, "_trace", None)
    is_valid = getattr(trace, "is_valid", None)
    if is_valid is not None and not is_valid():
        return True
    if _TRACE_CTX is None:  # pragma: no cover - other JAX internals
        return False
    current = _TRACE_CTX.trace
    if isinstance(current, _EVAL_TRACE):
        return True
    while current is not None:
        if current is trace:
            return False
        current = getattr(current, "parent_trace", None)
    return False


def refuse_tracer(module: Any, name: str) -> None:
    """Raise for a tracer assigned to ``module.name`` when ``module`` was made outside."""
    raise _errors.ModuleInJaxError(
        _errors.TRACER_ON_CAPTURED_MODULE.format(type_name=type(module).__name__, name=name)
    )
