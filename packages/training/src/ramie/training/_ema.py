"""EMA: Polyak averaging of a model's parameters, kept in a copy of the model.

The averaging needs no framework support (it is ``optax.incremental_update``
over the parameters); the helper only keeps the averaged parameters in a
model you can call, so evaluating with them is ``ema.averaged(x)``.
"""

from __future__ import annotations

from numbers import Real

import optax

from ramie import core

from . import _errors


class EMA(core.Module):
    """An exponential moving average of ``model``'s parameters, as a model of its own.

    ``ema.averaged`` is a copy of ``model`` whose ``wrt`` Variables (``Param``
    by default) hold the averages; every ``ema.update()`` moves them towards
    the model's current values::

        average <- decay * average + (1 - decay) * parameter

    and copies the model's other state (BatchNorm statistics, RNG state) as it
    is, so the averaged model evaluates like the trained one with averaged
    weights. The averages start at the model's parameters. An EMA is a Module:
    pass it to ``jit`` with the model and optimizer, split it, checkpoint it.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.training import EMA
    >>> class Scale(core.Module):
    ...     def __init__(self):
    ...         self.w = core.Param(jnp.zeros(()))
    ...     def __call__(self, x):
    ...         return self.w * x
    >>> model = Scale()
    >>> ema = EMA(model, decay=0.9)   # one line; then ema.update() after each step
    >>> model.w.value = jnp.array(1.0)
    >>> ema.update()
    >>> round(float(ema.averaged.w.value), 6)    # 0.9 * 0 + 0.1 * 1
    0.1
    >>> round(float(ema.averaged(jnp.array(10.0))), 6)
    1.0
    """

    def __init__(self, model: core.Module, decay: float = 0.999, *, wrt: core.Filter = core.Param):
        if not isinstance(model, core.Module):
            raise _errors.TrainingError(
                _errors.NOT_A_MODULE.format(who="EMA", type_name=type(model).__name__)
            )
        if isinstance(decay, bool) or not isinstance(decay, Real) or not 0 <= decay <= 1:
            raise _errors.TrainingError(_errors.BAD_DECAY.format(decay=decay))
        self.model = model
        self.decay = float(decay)
        self.wrt = wrt
        self.averaged = core.clone(model)

    @property
    def params(self) -> core.State:
        """The averages: the ``wrt`` State of ``averaged`` (a snapshot; Flax NNX's ``ema.params``).

        See ``apply_to`` for an example.
        """
        return core.state(self.averaged, self.wrt)

    def apply_to(self, model: core.Module) -> core.Module:
        """The averaged model, with ``model``'s other (non-``wrt``) state copied in.

        Flax NNX's ``ema.apply_to(model)``: the result is ``ema.averaged``
        itself, so it follows every later ``ema.update()``.

        >>> import jax.numpy as jnp
        >>> from ramie import core
        >>> from ramie.training import EMA
        >>> class Scale(core.Module):
        ...     def __init__(self):
        ...         self.w = core.Param(jnp.zeros(()))
        >>> model = Scale(); ema = EMA(model, decay=0.5)
        >>> view = ema.apply_to(model)
        >>> model.w.value = jnp.array(4.0); ema.update(model)
        >>> float(view.w.value), float(ema.params["w"].value)
        (2.0, 2.0)
        """
        expected = core.state(self.averaged).flat_state()
        found = core.state(model).flat_state()
        if expected.keys() != found.keys():
            raise _errors.TrainingError(
                _errors.EMA_OTHER_MODEL.format(
                    found=type(model).__name__,
                    expected=type(self.model).__name__,
                    details=_errors.describe_path_difference(list(expected), list(found)),
                )
            )
        core.update(self.averaged, core.state(model, core.Not(self.wrt)))
        return self.averaged

    def update(self, model: core.Module | None = None) -> None:
        """Move the averages one step towards the model's current parameters.

        ``model`` defaults to the EMA's own; Flax NNX's form ``ema.update(model)``
        passes it explicitly (it must have the same structure).
        """
        current = core.state(self.model if model is None else model).flat_state()
        averaged = core.state(self.averaged).flat_state()
        if current.keys() != averaged.keys():
            raise _errors.TrainingError(
                _errors.EMA_STRUCTURE_CHANGED.format(
                    model=type(self.model).__name__,
                    details=_errors.describe_path_difference(list(averaged), list(current)),
                )
            )
        selected = core.to_predicate(self.wrt)
        step_size = 1.0 - self.decay
        for path, leaf in current.items():
            if selected(path, leaf):
                new = optax.incremental_update(_value(leaf), _value(averaged[path]), step_size)
                if isinstance(leaf, core.Variable):
                    leaf.value = new
                else:
                    current[path] = new
        core.update(self.averaged, core.State.from_flat_state(current))


def _value(leaf):
    return leaf.value if isinstance(leaf, core.Variable) else leaf
