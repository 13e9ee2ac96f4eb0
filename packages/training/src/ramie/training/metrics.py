"""Metrics that accumulate over batches as Module state, safe inside ``jax.jit``.

Each metric is a ``ramie.core.Module`` whose state is ``MetricState``
Variables of fixed shape: ``update(**values)`` adds a batch, ``compute()``
reads the result, ``reset()`` zeros the state in place. Split a metric with
``core.split`` to carry its state through a jitted step.

>>> import jax, jax.numpy as jnp
>>> from ramie import core
>>> from ramie.training import metrics
>>> tracker = metrics.MultiMetric(loss=metrics.Average("loss"), accuracy=metrics.Accuracy())
>>> graphdef, state = core.split(tracker)
>>> @jax.jit
... def step(state, logits, labels):
...     tracker = core.merge(graphdef, state)
...     loss = jnp.mean(jax.nn.logsumexp(logits, -1) - logits[jnp.arange(2), labels])
...     tracker.update(loss=loss, logits=logits, labels=labels)
...     return core.state(tracker)
>>> state = step(state, jnp.array([[0.0, 0.0], [3.0, 0.0]]), jnp.array([1, 0]))
>>> result = core.merge(graphdef, state).compute()
>>> round(float(result["loss"]), 4), float(result["accuracy"])
(0.3709, 0.5)
"""

from ._metrics import (
    Accuracy,
    Average,
    Metric,
    MetricError,
    MetricState,
    MultiMetric,
    Statistics,
    Welford,
)

__all__ = [
    "Accuracy",
    "Average",
    "Metric",
    "MetricError",
    "MetricState",
    "MultiMetric",
    "Statistics",
    "Welford",
]
