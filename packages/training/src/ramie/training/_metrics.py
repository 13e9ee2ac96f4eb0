"""Metrics: running statistics kept as Module state, safe to update inside ``jax.jit``.

A metric is a ``ramie.core.Module`` whose state lives in ``MetricState``
Variables of fixed shape and dtype. ``update(**values)`` folds a batch in,
``compute()`` reads the result, ``reset()`` writes zeros back into the same
Variables, so a jitted step that updates or resets metrics never recompiles.
Every metric takes an optional ``mask`` (broadcastable to its values: only
the elements where it is true count) and rejects keyword arguments it does not
use, so a misspelt ``maks=`` is an error rather than silently ignored.
``MultiMetric`` hands each of its metrics only the keywords that metric takes.

>>> import jax.numpy as jnp
>>> from ramie import core
>>> from ramie.training.metrics import Average, MetricState
>>> loss = Average("loss")
>>> loss.update(loss=jnp.array([1.0, 2.0]))
>>> loss.update(loss=jnp.array([4.0, 100.0]), mask=jnp.array([True, False]))
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

UNKNOWN_KEYWORDS = (
    "{metric}.update() got the keyword argument(s) {unknown}, which it does not use; it takes "
    "{known}. Remove them, or check their spelling (a misspelt mask= would otherwise be "
    "silently ignored)."
)

MULTI_UNKNOWN_KEYWORDS = (
    "MultiMetric.update() got the keyword argument(s) {unknown}, which none of its metrics "
    "({names}) uses; together they take {known}. Remove them or check their spelling."
)

BAD_MASK = (
    "{metric}.update(): mask of shape {mask} does not broadcast with the shape {shape} of "
    "{what}. Pass a mask with one entry per element (or broadcastable to it), e.g. of shape "
    "{shape}."
)

MULTI_MASK_NAMES = (
    "MultiMetric.update(mask={{...}}): the mask dict has keys {unknown} that are not metric "
    "names; the metrics are {names}."
)


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
    ``__init__`` and inherit ``reset``, which zeros every ``MetricState``
    attribute in place, and ``split``. A subclass that overrides ``keywords()``
    gets only those keywords from ``MultiMetric`` and can reject others with
    ``check_keywords``; by default it is handed every keyword.

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

    def keywords(self) -> frozenset[str] | None:
        """The keyword arguments ``update`` takes, or None when it takes any (the default).

        ``MultiMetric`` passes a metric only these keywords; a subclass that
        declares them gets unknown keywords rejected by ``check_keywords``.
        """
        return None

    def check_keywords(self, values: dict) -> None:
        """Raise MetricError if ``values`` has a keyword that ``keywords()`` does not list."""
        known = self.keywords()
        unknown = sorted(set(values) - known) if known is not None else []
        if unknown:
            raise MetricError(
                UNKNOWN_KEYWORDS.format(
                    metric=type(self).__name__, unknown=unknown, known=sorted(known)
                )
            )

    def split(self, *filters: Any) -> tuple:
        """``core.split(self, *filters)``: the GraphDef and State(s) of this metric.

        >>> from ramie.training.metrics import Average
        >>> graphdef, state = Average().split()
        >>> sorted(state.flat_state())
        [('count',), ('total',)]
        """
        return core.split(self, *filters)

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

    def keywords(self) -> frozenset[str]:
        """``{argname, 'mask'}``."""
        return frozenset((self.argname, "mask"))

    def update(self, **values: Any) -> None:
        """Add the elements of ``values[argname]`` where ``mask`` (if given) is true."""
        x = _required(self, values)
        self.check_keywords(values)
        self._add(*_masked(self, x, values.get("mask"), self.argname))

    def _add(self, x: jax.Array, mask: jax.Array | None) -> None:
        if mask is None:
            self.total.value = self.total.value + jnp.sum(x, dtype=jnp.float32)
            self.count.value = self.count.value + x.size
            return
        kept = jnp.where(mask, x, jnp.zeros((), x.dtype))
        self.total.value = self.total.value + jnp.sum(kept, dtype=jnp.float32)
        self.count.value = self.count.value + jnp.sum(mask, dtype=jnp.int32)

    def compute(self) -> jax.Array:
        """The mean so far (nan before the first update)."""
        return self.total.value / self.count.value


def _masked(metric: Metric, x: jax.Array, mask: Any, what: str) -> tuple:
    """``(x, mask)`` broadcast to their common shape (mask as bools), or a MetricError.

    Without a mask, ``(x, None)``. A scalar value with a per-example mask (a
    batch's mean loss with the batch's mask) counts once per kept example.
    """
    if mask is None:
        return x, None
    mask = _array(mask)
    try:
        shape = jnp.broadcast_shapes(mask.shape, x.shape)
    except ValueError:
        raise MetricError(
            BAD_MASK.format(
                metric=type(metric).__name__,
                mask=tuple(mask.shape),
                shape=tuple(x.shape),
                what=what,
            )
        ) from None
    return jnp.broadcast_to(x, shape), jnp.broadcast_to(mask.astype(jnp.bool_), shape)


def _required(metric: Average | Welford, values: dict) -> jax.Array:
    """``values[metric.argname]`` as an array, or a MetricError that says how to pass it."""
    if metric.argname in values:
        return _array(values[metric.argname])
    names = [name for name in values if name != "mask"]
    message = MISSING_VALUES.format(
        metric=type(metric).__name__,
        argname=metric.argname,
        got=_got(values),
        suggest=names[0] if len(names) == 1 else "loss",
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

    def keywords(self) -> frozenset[str]:
        """``{argname, 'mask'}``."""
        return frozenset((self.argname, "mask"))

    def update(self, **values: Any) -> None:
        """Merge the elements of ``values[argname]`` where ``mask`` (if given) is true."""
        x = _required(self, values).astype(jnp.float32)
        self.check_keywords(values)
        x, mask = _masked(self, x, values.get("mask"), self.argname)
        if x.size == 0:  # shapes are static under jit, so this is a trace-time branch
            return
        if mask is None:
            n = jnp.asarray(x.size, jnp.float32)
            batch_mean = jnp.mean(x)
            batch_m2 = jnp.sum(jnp.square(x - batch_mean))
        else:
            n = jnp.sum(mask, dtype=jnp.float32)
            batch_mean = jnp.sum(jnp.where(mask, x, 0.0)) / jnp.maximum(n, 1.0)
            batch_m2 = jnp.sum(jnp.where(mask, jnp.square(x - batch_mean), 0.0))
        seen = self.count.value.astype(jnp.float32)
        total = seen + n
        share = jnp.where(total > 0, n / jnp.maximum(total, 1.0), 0.0)
        delta = batch_mean - self.mean.value
        self.mean.value = self.mean.value + delta * share
        self.m2.value = self.m2.value + batch_m2 + jnp.square(delta) * seen * share
        self.count.value = self.count.value + n.astype(jnp.int32)

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

    def keywords(self) -> frozenset[str]:
        """``{'logits', 'labels', 'mask'}``."""
        return frozenset(("logits", "labels", "mask"))

    def update(self, **values: Any) -> None:
        """Count the correct predictions in a batch (only where ``mask``, if given, is true)."""
        if "logits" not in values or "labels" not in values:
            raise MetricError(MISSING_ACCURACY_INPUTS.format(got=_got(values)))
        self.check_keywords(values)
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
        self._add(*_masked(self, correct, values.get("mask"), "the labels"))


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

    def keywords(self) -> frozenset[str] | None:
        """Every keyword one of the metrics takes (None if one of them takes any)."""
        known: set[str] = {"mask"}
        for _, metric in self._metrics():
            taken = metric.keywords()
            if taken is None:
                return None
            known |= taken
        return frozenset(known)

    def update(self, **values: Any) -> None:
        """Pass every metric the ``values`` it takes.

        ``mask`` is one array for every metric, or a dict ``{metric name:
        mask}`` (metrics not named there get no mask). A keyword that no
        metric takes is an error.
        """
        known = self.keywords()
        if known is not None and set(values) - known:
            raise MetricError(
                MULTI_UNKNOWN_KEYWORDS.format(
                    unknown=sorted(set(values) - known),
                    names=list(self._names),
                    known=sorted(known),
                )
            )
        mask = values.pop("mask", None)
        if isinstance(mask, dict) and set(mask) - set(self._names):
            raise MetricError(
                MULTI_MASK_NAMES.format(
                    unknown=sorted(set(mask) - set(self._names)), names=list(self._names)
                )
            )
        for name, metric in self._metrics():
            taken = metric.keywords()
            given = values if taken is None else {k: v for k, v in values.items() if k in taken}
            own_mask = mask.get(name) if isinstance(mask, dict) else mask
            if own_mask is not None:
                given = {**given, "mask": own_mask}
            try:
                metric.update(**given)
            except MetricError as error:
                raise MetricError(MULTI_METRIC_ENTRY.format(name=name, message=error)) from error

    def compute(self) -> dict[str, Any]:
        """``{name: metric.compute()}`` for every metric, in the order they were given."""
        return {name: metric.compute() for name, metric in self._metrics()}

    def reset(self) -> None:
        """Reset every metric."""
        for _, metric in self._metrics():
            metric.reset()
