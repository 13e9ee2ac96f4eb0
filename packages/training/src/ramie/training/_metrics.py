"""Metrics: running statistics kept as Module state, safe to update inside ``jax.jit``.

A metric is a ``ramie.core.Module`` whose state lives in ``MetricState``
Variables of fixed shape and dtype. ``update(**values)`` folds a batch in,
``compute()`` reads the result, ``reset()`` writes zeros back into the same
Variables, so a jitted step that updates or resets metrics never recompiles.
Every metric ignores keyword arguments it does not use, so one call can feed
many metrics (that is what ``MultiMetric`` does).

>>> import jax.numpy as jnp
>>> from ramie import core
>>> from ramie.training.metrics import Average, MetricState
>>> loss = Average("loss")
>>> loss.update(loss=jnp.array([1.0, 2.0]), step=0)
>>> loss.update(loss=4.0)
>>> round(float(loss.compute()), 4)
2.3333
>>> sorted(core.state(loss, MetricState).flat_state())
[('count',), ('total',)]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ramie import core


class MetricError(core.RamieError, TypeError):
    """A metric was updated without the values it needs, or with values it cannot use."""


MISSING_VALUES = (
    "{metric}.update() needs the keyword argument {argname!r}, but it got {got}. Pass the "
    "value under that name, update({argname}=...), or, if your value has another name, "
    "build the metric with it, e.g. {metric}(argname={suggest!r})."
)

MISSING_ACCURACY_INPUTS = (
    "Accuracy.update() needs the keyword arguments 'logits' and 'labels', but it got {got}. "
    "Call update(logits=..., labels=...) with the model's outputs and the true labels."
)

BINARY_NEEDS_THRESHOLD = (
    "Accuracy.update() got logits and labels of the same shape {shape}, which means binary "
    "classification (one score per example), but this Accuracy has no threshold. Build it "
    "with Accuracy(threshold=0.0) when the logits are raw scores, or Accuracy(threshold=0.5) "
    "when they are probabilities. If the labels are one-hot, pass class indices instead: "
    "labels=labels.argmax(-1)."
)

BAD_ACCURACY_SHAPES = (
    "Accuracy.update() got logits of shape {logits} and labels of shape {labels}. Expected "
    "either multiclass logits of shape labels.shape + (num_classes,) with integer class "
    "labels, or logits and labels of the same shape for binary classification (with "
    "Accuracy(threshold=...))."
)

MULTI_METRIC_NAME_CLASH = (
    "MultiMetric({name}=...): the name {name!r} is taken by MultiMetric's own attribute "
    "{name!r} (names may not start with '_' or be one of MultiMetric's methods such as "
    "update, compute, reset). Choose another name, e.g. MultiMetric({name}_metric=...)."
)

MULTI_METRIC_NOT_A_METRIC = (
    "MultiMetric({name}=...) got a {found}; every entry must be a Metric such as Average(), "
    "Welford() or Accuracy()."
)

MULTI_METRIC_ENTRY = "MultiMetric entry {name!r}: {message}"


class MetricState(core.Variable):
    """The kind of every metric's state.

    Select it with ``core.split(model, MetricState)`` or ``core.state(obj,
    MetricState)``; gradients (which take ``Param``) never touch it.

    >>> import jax.numpy as jnp
    >>> from ramie import core
    >>> from ramie.training.metrics import Average, MetricState
    >>> graphdef, state = core.split(Average(), MetricState)
    >>> sorted(state.flat_state())
    [('count',), ('total',)]
    """

    __slots__ = ()


def _array(x: Any) -> jax.Array:
    return jnp.asarray(x.value if isinstance(x, core.Variable) else x)


def _got(values: dict) -> str:
    return f"keyword arguments {sorted(values)}" if values else "no keyword arguments"


class Metric(core.Module):
    """Base class of metrics: ``update(**values)``, ``compute()``, ``reset()``.

    Subclasses keep their state in ``MetricState`` Variables created in
    ``__init__``, ignore keyword arguments they do not use in ``update``, and
    inherit ``reset``, which zeros every ``MetricState`` attribute in place.

    >>> import jax.numpy as jnp
    >>> from ramie.training.metrics import Metric, MetricState
    >>> class Maximum(Metric):
    ...     def __init__(self):
    ...         self.max = MetricState(jnp.zeros(()))
    ...     def update(self, *, values, **_):
    ...         self.max.value = jnp.maximum(self.max.value, jnp.max(values))
    ...     def compute(self):
    ...         return self.max.value
    >>> m = Maximum(); m.update(values=jnp.array([1.0, 3.0]), loss=0.0)
    >>> float(m.compute())
    3.0
    >>> m.reset(); float(m.compute())
    0.0
    """

    def update(self, **values: Any) -> None:
        """Fold a batch of values into the state."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update().")

    def compute(self) -> Any:
        """The metric's value over everything passed to ``update`` since the last reset."""
        raise NotImplementedError(f"{type(self).__name__} does not implement compute().")

    def reset(self) -> None:
        """Write zeros of the same shapes and dtypes into every ``MetricState`` attribute."""
        for value in vars(self).values():
            if isinstance(value, MetricState):
                current = value.value
                value.value = jnp.zeros(current.shape, current.dtype)


class Average(Metric):
    """Running mean of every element passed as ``update(<argname>=...)``.

    Scalars and arrays of any shape are accepted; each element counts once.
    State: ``total`` (float32) and ``count`` (int32). ``compute()`` is
    ``total / count``, which is nan before the first update.

    >>> import jax.numpy as jnp
    >>> from ramie.training.metrics import Average
    >>> avg = Average()
    >>> avg.update(values=jnp.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> avg.update(values=10.0)
    >>> float(avg.compute()), int(avg.count.value)
    (4.0, 5)
    """

    def __init__(self, argname: str = "values"):
        self.argname = argname
        self.total = MetricState(jnp.zeros((), jnp.float32))
        self.count = MetricState(jnp.zeros((), jnp.int32))

    def update(self, **values: Any) -> None:
        """Add the elements of ``values[argname]``; other keyword arguments are ignored."""
        x = _required(self, values)
        self.total.value = self.total.value + jnp.sum(x, dtype=jnp.float32)
        self.count.value = self.count.value + x.size

    def compute(self) -> jax.Array:
        """The mean so far (nan before the first update)."""
        return self.total.value / self.count.value


def _required(metric: Average | Welford, values: dict) -> jax.Array:
    """``values[metric.argname]`` as an array, or a MetricError that says how to pass it."""
    if metric.argname in values:
        return _array(values[metric.argname])
    message = MISSING_VALUES.format(
        metric=type(metric).__name__,
        argname=metric.argname,
        got=_got(values),
        suggest=next(iter(values)) if len(values) == 1 else "loss",
    )
    raise MetricError(message)


class Statistics(NamedTuple):
    """What ``Welford.compute()`` returns: population statistics of all values seen.

    >>> import jax.numpy as jnp
    >>> from ramie.training.metrics import Welford
    >>> w = Welford(); w.update(values=jnp.array([0.0, 2.0]))
    >>> mean, var, std, sem = w.compute()
    >>> float(mean), float(var), float(std), round(float(sem), 4)
    (1.0, 1.0, 1.0, 0.7071)
    """

    mean: jax.Array
    var: jax.Array
    std: jax.Array
    sem: jax.Array


class Welford(Metric):
    """Running mean and variance of every element passed as ``update(<argname>=...)``.

    Each batch's count, mean and sum of squared deviations are merged into the
    running ones (Chan et al.'s parallel form of Welford's algorithm), which
    stays accurate where a running sum of squares would cancel. Empty batches
    change nothing. State: ``count`` (int32), ``mean`` and ``m2`` (float32).

    ``compute()`` returns ``Statistics(mean, var, std, sem)``: ``var`` is the
    population variance (ddof=0, like ``np.var``), ``std = sqrt(var)`` and
    ``sem = sqrt(var / count)``. Every field is nan before the first update.

    >>> import jax.numpy as jnp
    >>> from ramie.training.metrics import Welford
    >>> w = Welford()
    >>> w.update(values=jnp.array([1.0, 2.0, 3.0]))
    >>> w.update(values=jnp.array([4.0]))
    >>> stats = w.compute()
    >>> [round(float(x), 4) for x in stats]
    [2.5, 1.25, 1.118, 0.559]
    """

    def __init__(self, argname: str = "values"):
        self.argname = argname
        self.count = MetricState(jnp.zeros((), jnp.int32))
        self.mean = MetricState(jnp.zeros((), jnp.float32))
        self.m2 = MetricState(jnp.zeros((), jnp.float32))

    def update(self, **values: Any) -> None:
        """Merge the elements of ``values[argname]``; other keyword arguments are ignored."""
        x = _required(self, values).astype(jnp.float32)
        if x.size == 0:  # shapes are static under jit, so this is a trace-time branch
            return
        batch_mean = jnp.mean(x)
        batch_m2 = jnp.sum(jnp.square(x - batch_mean))
        seen = self.count.value.astype(jnp.float32)
        total = seen + x.size
        delta = batch_mean - self.mean.value
        self.mean.value = self.mean.value + delta * (x.size / total)
        self.m2.value = self.m2.value + batch_m2 + jnp.square(delta) * seen * (x.size / total)
        self.count.value = self.count.value + x.size

    def compute(self) -> Statistics:
        """``Statistics(mean, var, std, sem)`` of everything seen (all nan before any update)."""
        count = self.count.value.astype(jnp.float32)
        mean = jnp.where(count > 0, self.mean.value, jnp.nan)
        var = self.m2.value / count
        return Statistics(mean=mean, var=var, std=jnp.sqrt(var), sem=jnp.sqrt(var / count))


class Accuracy(Average):
    """Fraction of correct predictions: ``update(logits=..., labels=...)``.

    Multiclass: ``logits`` has shape ``labels.shape + (num_classes,)`` and an
    example is correct when ``argmax(logits, -1) == labels``. Binary: ``logits``
    and ``labels`` have the same shape, and an example is correct when
    ``(logits > threshold) == labels`` (labels are bools, or numbers read as
    ``labels > 0.5``); the binary form needs ``Accuracy(threshold=...)``: 0.0
    for raw scores, 0.5 for probabilities.

    >>> import jax.numpy as jnp
    >>> from ramie.training.metrics import Accuracy
    >>> acc = Accuracy()
    >>> acc.update(logits=jnp.array([[0.1, 0.9], [0.7, 0.3], [0.2, 0.8]]),
    ...            labels=jnp.array([1, 1, 1]))
    >>> round(float(acc.compute()), 4)
    0.6667
    >>> binary = Accuracy(threshold=0.0)
    >>> binary.update(logits=jnp.array([2.0, -1.0, 0.5]), labels=jnp.array([1, 0, 0]))
    >>> round(float(binary.compute()), 4)
    0.6667
    """

    def __init__(self, threshold: float | None = None):
        super().__init__()
        self.threshold = threshold

    def update(self, **values: Any) -> None:
        """Count the correct predictions in a batch; other keyword arguments are ignored."""
        if "logits" not in values or "labels" not in values:
            raise MetricError(MISSING_ACCURACY_INPUTS.format(got=_got(values)))
        logits, labels = _array(values["logits"]), _array(values["labels"])
        if logits.ndim == labels.ndim + 1 and logits.shape[:-1] == labels.shape:
            correct = jnp.argmax(logits, axis=-1) == labels
        elif logits.shape == labels.shape:
            if self.threshold is None:
                raise MetricError(BINARY_NEEDS_THRESHOLD.format(shape=tuple(logits.shape)))
            truth = labels if labels.dtype == jnp.bool_ else labels > 0.5
            correct = (logits > self.threshold) == truth
        else:
            raise MetricError(
                BAD_ACCURACY_SHAPES.format(logits=tuple(logits.shape), labels=tuple(labels.shape))
            )
        super().update(values=correct)


class MultiMetric(Metric):
    """Several named metrics updated together.

    ``update(**values)`` passes every value to every metric (each takes what
    it needs), ``compute()`` returns ``{name: result}``, ``reset()`` resets
    them all. The metrics are attributes: ``multi.loss``, ``multi.accuracy``.

    >>> import jax.numpy as jnp
    >>> from ramie.training.metrics import Accuracy, Average, MultiMetric
    >>> metrics = MultiMetric(loss=Average("loss"), accuracy=Accuracy())
    >>> metrics.update(loss=jnp.array(0.25), logits=jnp.array([[2.0, 1.0], [0.0, 1.0]]),
    ...                labels=jnp.array([0, 0]))
    >>> {name: float(value) for name, value in metrics.compute().items()}
    {'loss': 0.25, 'accuracy': 0.5}
    """

    def __init__(self, **metrics: Metric):
        for name, metric in metrics.items():
            if name.startswith("_") or hasattr(type(self), name):
                raise MetricError(MULTI_METRIC_NAME_CLASH.format(name=name))
            if not isinstance(metric, Metric):
                raise MetricError(
                    MULTI_METRIC_NOT_A_METRIC.format(name=name, found=type(metric).__name__)
                )
        self._names = tuple(metrics)
        for name, metric in metrics.items():
            setattr(self, name, metric)

    def _metrics(self) -> list[tuple[str, Metric]]:
        return [(name, getattr(self, name)) for name in self._names]

    def update(self, **values: Any) -> None:
        """Pass all ``values`` to every metric."""
        for name, metric in self._metrics():
            try:
                metric.update(**values)
            except MetricError as error:
                raise MetricError(MULTI_METRIC_ENTRY.format(name=name, message=error)) from error

    def compute(self) -> dict[str, Any]:
        """``{name: metric.compute()}`` for every metric, in the order they were given."""
        return {name: metric.compute() for name, metric in self._metrics()}

    def reset(self) -> None:
        """Reset every metric."""
        for _, metric in self._metrics():
            metric.reset()
