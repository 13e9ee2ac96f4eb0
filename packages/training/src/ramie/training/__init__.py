"""``ramie.training``: an Optimizer over optax, per-group optimizers, metrics, EMA.

>>> import jax, jax.numpy as jnp, optax
>>> from ramie import core
>>> from ramie.training import EMA, Optimizer, metrics
>>> class Line(core.Module):
...     def __init__(self):
...         self.a = core.Param(jnp.zeros(()))
...         self.b = core.Param(jnp.zeros(()))
...     def __call__(self, x):
...         return self.a * x + self.b
>>> model = Line()
>>> optimizer = Optimizer(model, optax.adam(0.1))
>>> ema = EMA(model, decay=0.9)
>>> loss_avg = metrics.Average()
>>> x = jnp.linspace(-1, 1, 16); y = 3 * x + 1
>>> def loss_fn(params):
...     return jnp.mean((core.merge(graphdef, params, rest)(x) - y) ** 2)
>>> for _ in range(200):
...     graphdef, params, rest = core.split(model, core.Param, ...)
...     loss, grads = jax.value_and_grad(loss_fn)(params)
...     _ = optimizer.update(grads)  # returns the updates, as in Flax NNX
...     ema.update()
...     loss_avg.update(values=loss)
>>> round(float(model.a.value), 1), round(float(model.b.value), 1)
(3.0, 1.0)
>>> int(optimizer.step.value)
200
"""

from importlib.metadata import version as _version

from . import metrics
from ._ema import EMA
from ._errors import TrainingError
from ._opt_state import OptState
from ._optimizer import ModelAndOptimizer, Optimizer
from .metrics import Metric, MultiMetric  # top-level too, as in Flax NNX

__all__ = [
    "EMA",
    "Metric",
    "ModelAndOptimizer",
    "MultiMetric",
    "OptState",
    "Optimizer",
    "TrainingError",
    "metrics",
]
__version__: str = _version("ramie-training")
