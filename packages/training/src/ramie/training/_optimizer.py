"""Optimizer: an optax transformation, its state as Variables, and the model it updates."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ramie import core

from . import _errors, _groups, _opt_state
from ._opt_state import OptState


@dataclasses.dataclass(frozen=True)
class _ParamPaths:
    """The paths of the parameters an optimizer's state was made for (a static value)."""

    paths: tuple

    def __repr__(self) -> str:
        return f"<{len(self.paths)} parameter paths>"


def _as_transformation(tx: Any) -> optax.GradientTransformationExtraArgs:
    """``tx`` as a transformation whose ``update`` takes extra keyword arguments."""
    if hasattr(tx, "gradient_transformation"):  # optax.MultiSteps
        tx = tx.gradient_transformation()
    return optax.with_extra_args_support(tx)


class Optimizer(core.Module):
    """Updates a model's parameters in place with an optax transformation.

    The optimizer keeps a reference to ``model`` (shared, not copied), the
    optax state as ``OptState`` Variables, and a ``step`` counter, so it can be
    passed to ``jit`` next to the model, split, merged and checkpointed like
    any other Module.

    Args:
      model: the Module to train.
      tx: an optax ``GradientTransformation`` (``optax.MultiSteps`` and
        schedules work as they are), or per-group optimizers: a mapping
        ``{filter: transformation}`` (or a sequence of ``(filter,
        transformation)`` pairs). Each parameter goes to the first group whose
        filter matches it; this is ``optax.multi_transform`` underneath.
      wrt: the filter that selects the parameters (default ``Param``). The
        gradients passed to ``update`` must have exactly these paths.

    optax sees the parameters as the nested dict ``to_pure_dict(state(model,
    wrt))``: give ``param_labels``, masks and ``value_fn`` callables in that form.

    >>> import jax, jax.numpy as jnp, optax
    >>> from ramie import core
    >>> from ramie.training import Optimizer
    >>> class Scale(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.ones(3))
    >>> model = Scale()
    >>> optimizer = Optimizer(model, optax.sgd(0.1))
    >>> def loss(w):
    ...     return jnp.sum(w ** 2)
    >>> grads = core.State({"w": core.Param(jax.grad(loss)(model.w.value))})
    >>> updates = optimizer.update(grads)  # w <- w - 0.1 * 2w; returns the -0.2w
    >>> model.w.value.tolist(), int(optimizer.step.value)
    ([0.800000011920929, 0.800000011920929, 0.800000011920929], 1)
    """

    def __init__(self, model: core.Module, tx: Any, *, wrt: core.Filter = core.Param):
        if not isinstance(model, core.Module):
            raise _errors.TrainingError(
                _errors.NOT_A_MODULE.format(who="Optimizer", type_name=type(model).__name__)
            )
        params = core.state(model, wrt)
        if not params:
            raise _errors.TrainingError(
                _errors.EMPTY_WRT.format(wrt=_groups.filter_name(wrt), model=type(model).__name__)
            )
        if not _groups.is_transformation(tx):
            tx = _groups.group_transform(params, tx)
        self.model = model
        self.tx = _as_transformation(tx)
        self.wrt = wrt
        self.step = OptState(jnp.zeros((), jnp.uint32))
        self.opt_state = _opt_state.wrap(self.tx.init(core.to_pure_dict(params)))
        self._param_paths = _ParamPaths(tuple(params.flat_state()))

    def update(self, *args: Any, **extra: Any) -> Any:
        """Apply one optimization step to the model, in place, count it, return the updates.

        Call it as ``update(grads)`` or ``update(model, grads)`` (the model
        must be the optimizer's own). ``grads`` is the State that
        ``grad``/``value_and_grad`` return for the model; keyword arguments go
        to the optax transformation (e.g. ``value``, ``grad`` and
        ``value_fn`` for ``optax.lbfgs``'s line search). The result is what
        optax computed and was added to the parameters, as the nested dict
        ``to_pure_dict(state(model, wrt))`` has (Flax NNX returns the same).
        """
        if len(args) == 2:
            model, grads = args
            self._check_model(model)
        elif len(args) == 1:
            (grads,) = args
        else:
            raise TypeError(
                f"Optimizer.update() takes (grads) or (model, grads), got {len(args)} "
                "positional arguments"
            )
        params = core.state(self.model, self.wrt)
        flat_params = params.flat_state()
        self._check_paths(tuple(flat_params))
        grad_values = self._gradient_values(grads, flat_params)
        current = core.to_pure_dict(params)
        gradients = jax.tree_util.tree_map_with_path(
            lambda keys, _: grad_values[tuple(k.key for k in keys)], current
        )
        updates, new_state = self.tx.update(
            gradients, _opt_state.unwrap(self.opt_state), current, **extra
        )
        core.replace_by_pure_dict(params, optax.apply_updates(current, updates))
        core.update(self.model, params)
        _opt_state.assign(self.opt_state, new_state)
        self.step.value = self.step.value + 1
        return updates

    # -- checks --------------------------------------------------------------
    def _check_model(self, model: Any) -> None:
        if model is not self.model:
            raise _errors.TrainingError(
                _errors.WRONG_MODEL.format(
                    expected=type(self.model).__name__,
                    expected_id=id(self.model),
                    found=type(model).__name__,
                    found_id=id(model),
                )
            )

    def _check_paths(self, paths: tuple) -> None:
        if paths != self._param_paths.paths:
            raise _errors.TrainingError(
                _errors.PARAMETERS_CHANGED.format(
                    model=type(self.model).__name__,
                    details=_errors.describe_path_difference(self._param_paths.paths, paths),
                )
            )

    def _gradient_values(self, grads: Any, flat_params: dict) -> dict:
        """The gradient array of every parameter path, after checking paths and shapes."""
        if not isinstance(grads, Mapping) or isinstance(grads, core.Module):
            raise _errors.TrainingError(
                _errors.GRADS_NOT_A_STATE.format(type_name=type(grads).__name__)
            )
        flat = (grads if isinstance(grads, core.State) else core.State(grads)).flat_state()
        if flat.keys() != flat_params.keys():
            self._raise_path_mismatch(flat_params, flat)
        values = {}
        wrong = []
        for path, g in flat.items():
            g = g.value if isinstance(g, core.Variable) else g
            p = flat_params[path]
            p = p.value if isinstance(p, core.Variable) else p
            if np.shape(g) != np.shape(p):
                wrong.append(f"{core.format_path(path)}: {np.shape(p)} -> {np.shape(g)}")
            values[path] = g
        if wrong:
            raise _errors.TrainingError(
                _errors.GRADS_SHAPES.format(count=len(wrong), paths=core.format_paths(wrong))
            )
        return values

    def _raise_path_mismatch(self, params: dict, grads: dict) -> None:
        expected, found = list(params), list(grads)
        model, wrt = type(self.model).__name__, _groups.filter_name(self.wrt)
        if found and not set(found) & set(expected):
            prefix = _submodule_prefix(params, grads)
            if prefix:
                raise _errors.TrainingError(
                    _errors.GRADS_OF_SUBMODULE.format(
                        found=len(found),
                        submodule=core.format_path(prefix),
                        model=model,
                        example=core.format_path(found[0]),
                        full=core.format_path(prefix + tuple(found[0])),
                        attr=".".join(
                            str(k) if isinstance(k, str) else f"[{k}]" for k in prefix
                        ).replace(".[", "["),
                    )
                )
            raise _errors.TrainingError(
                _errors.GRADS_FROM_ANOTHER_MODEL.format(
                    found=len(found),
                    model=model,
                    wrt=wrt,
                    expected=core.format_paths(map(core.format_path, expected), limit=5),
                    got=core.format_paths(map(core.format_path, found), limit=5),
                )
            )
        raise _errors.TrainingError(
            _errors.GRADS_MISMATCH.format(
                model=model, wrt=wrt, details=_errors.describe_path_difference(expected, found)
            )
        )


def _leaf(value: Any) -> Any:
    return value.value if isinstance(value, core.Variable) else value


def _submodule_prefix(params: dict, grads: dict) -> tuple:
    """The path ``p`` such that every gradient is at ``p + path`` with its shape, or ()."""
    first = next(iter(grads))
    for path in params:
        if len(path) > len(first) and path[len(path) - len(first) :] == first:
            prefix = path[: len(path) - len(first)]
            if all(
                prefix + path in params
                and np.shape(_leaf(params[prefix + path])) == np.shape(_leaf(g))
                for path, g in grads.items()
            ):
                return prefix
    return ()


class ModelAndOptimizer(Optimizer):
    """An Optimizer whose ``update`` takes only the gradients: Flax NNX's ``ModelAndOptimizer``.

    ramie's ``Optimizer`` already holds its model (``optimizer.model``) and
    accepts ``update(grads)``; this class exists so that NNX programs that use
    the name run unchanged. ``update(grads, **extra)`` returns the updates.

    >>> import jax.numpy as jnp, optax
    >>> from ramie import core
    >>> from ramie.training import ModelAndOptimizer
    >>> class Scale(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.ones(2))
    >>> optimizer = ModelAndOptimizer(Scale(), optax.sgd(0.5))
    >>> updates = optimizer.update(core.State({"w": core.Param(jnp.ones(2))}))
    >>> updates["w"].tolist(), optimizer.model.w.value.tolist()
    ([-0.5, -0.5], [0.5, 0.5])
    """

    def update(self, grads: Any, **extra: Any) -> Any:  # type: ignore[override]
        """One step on ``self.model`` from ``grads``; returns the updates."""
        return super().update(grads, **extra)
