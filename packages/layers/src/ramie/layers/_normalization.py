"""Normalization layers: BatchNorm, LayerNorm, RMSNorm, GroupNorm, InstanceNorm."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.nn import initializers

from ramie.core import BatchStat, Module, Param

from . import _errors
from ._common import EMPTY, Array, Dtype, PromoteDtype, as_rngs, describe, promote

Initializer = Callable[..., Array]
Axes = int | Sequence[int]


class BatchOfOneWarning(UserWarning):
    """BatchNorm was trained on a single value per feature (its batch variance is 0)."""


def _axes(ndim: int, axes: Axes) -> tuple[int, ...]:
    axes = axes if isinstance(axes, (list, tuple)) else (axes,)
    return tuple(sorted({a % ndim for a in axes}))


def _stats(
    x: Array,
    axes: tuple[int, ...],
    dtype: Dtype | None,
    *,
    use_mean: bool = True,
    use_fast_variance: bool = False,
    axis_name: str | None = None,
    axis_index_groups: Any = None,
    mask: Array | None = None,
) -> tuple[Array, Array]:
    """Mean and (biased) variance of ``x`` over ``axes``, computed in at least float32.

    Only the elements where ``mask`` (broadcast to ``x``) is true count.
    """
    dtype = jnp.promote_types(jnp.result_type(x) if dtype is None else dtype, jnp.float32)
    x = jnp.asarray(x, dtype)
    if mask is not None:
        mask = jnp.broadcast_to(jnp.asarray(mask, jnp.bool_), x.shape)

    def mean(*vals):
        out = [v.mean(axes, where=mask) for v in vals]
        if axis_name is not None:
            out = [lax.pmean(o, axis_name, axis_index_groups=axis_index_groups) for o in out]
        return out

    if not use_mean:
        (var,) = mean(jnp.square(jnp.abs(x)) if jnp.iscomplexobj(x) else jnp.square(x))
        return jnp.zeros_like(var), var
    if use_fast_variance:
        mu, mu2 = mean(x, jnp.square(x))
        return mu, jnp.maximum(0.0, mu2 - jnp.square(mu))
    (mu,) = mean(x)
    (var,) = mean(jnp.square(x - jnp.expand_dims(mu, axes)))
    return mu, var


def _normalize(
    x: Array,
    mean: Array,
    var: Array,
    scale: Array | None,
    bias: Array | None,
    reduction_axes: tuple[int, ...],
    feature_axes: tuple[int, ...],
    dtype: Dtype | None,
    epsilon: float,
) -> Array:
    stats_shape = [1 if a in reduction_axes else n for a, n in enumerate(x.shape)]
    feature_shape = [n if a in feature_axes else 1 for a, n in enumerate(x.shape)]
    y = x - mean.reshape(stats_shape)
    mul = lax.rsqrt(var.reshape(stats_shape) + epsilon)
    args = [x]
    if scale is not None:
        mul = mul * scale.reshape(feature_shape)
        args.append(scale)
    y = y * mul
    if bias is not None:
        y = y + bias.reshape(feature_shape)
        args.append(bias)
    if dtype is None:
        dtype = jnp.result_type(*args)
        if not jnp.issubdtype(dtype, jnp.inexact):
            dtype = jnp.promote_types(jnp.float32, dtype)
    return jnp.asarray(y, dtype)


def _check_features(layer: Any, x: Array, feature_axes: tuple[int, ...]) -> None:
    found = 1
    for a in feature_axes:
        found *= x.shape[a]
    if found != layer.num_features:
        axis = feature_axes[0] if len(feature_axes) == 1 else feature_axes
        raise _errors.LayerError(
            _errors.NORM_FEATURES.format(
                where=describe(layer),
                expected=layer.num_features,
                axis=axis,
                shape=tuple(x.shape),
                found=found,
            )
        )


_NOT_KEPT = ("self", "rngs", "scale_init", "bias_init", "scale_metadata", "bias_metadata")


def _setup(layer: Module, args: dict[str, Any]) -> None:
    """Create ``scale`` then ``bias`` and keep the configuration, from ``__init__``'s ``locals()``.

    ``scale``/``bias`` each draw a params key, as Flax does, and get their
    ``*_metadata``; every other argument but ``rngs`` and the initializers
    becomes an attribute of the same name.
    """
    rngs = as_rngs(args["rngs"], type(layer).__name__)
    n, param_dtype = args["num_features"], args["param_dtype"]
    layer.scale = (
        Param(args["scale_init"](rngs.params(), (n,), param_dtype), **args["scale_metadata"])
        if args["use_scale"]
        else None
    )
    layer.bias = (
        Param(args["bias_init"](rngs.params(), (n,), param_dtype), **args["bias_metadata"])
        if args["use_bias"]
        else None
    )
    for name, value in args.items():
        if name not in _NOT_KEPT and not name.startswith("_"):
            setattr(layer, name, value)


def _values(layer) -> tuple[Array | None, Array | None]:
    scale = layer.scale.value if layer.scale is not None else None
    bias = layer.bias.value if getattr(layer, "bias", None) is not None else None
    return scale, bias


class BatchNorm(Module):
    """Normalise over the batch (every axis but ``axis``), keeping running statistics.

    Params ``scale`` (ones) and ``bias`` (zeros); BatchStats ``mean`` (zeros)
    and ``var`` (ones), updated as ``momentum * old + (1 - momentum) * batch``
    in training mode. ``model.eval()`` sets ``use_running_average=True``: the
    running statistics are used and never changed; ``model.train()`` undoes it.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import BatchNorm
    >>> bn = BatchNorm(3, rngs=Rngs(0))
    >>> y = bn(jnp.arange(6.0).reshape(2, 3))
    >>> [round(float(v), 3) for v in bn.mean.value]   # 0.01 of the batch mean
    [0.015, 0.025, 0.035]
    >>> bn.eval(); bn.use_running_average
    True
    """

    def __init__(
        self,
        num_features: int,
        *,
        use_running_average: bool = False,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-5,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        use_bias: bool = True,
        use_scale: bool = True,
        bias_init: Initializer = initializers.zeros,
        scale_init: Initializer = initializers.ones,
        axis_name: str | None = None,
        use_fast_variance: bool = False,
        axis_index_groups: Any = None,
        promote_dtype: PromoteDtype = promote,
        rngs: Any,
        bias_metadata: Mapping[str, Any] = EMPTY,
        scale_metadata: Mapping[str, Any] = EMPTY,
    ):
        self.mean = BatchStat(jnp.zeros((num_features,), jnp.float32))
        self.var = BatchStat(jnp.ones((num_features,), jnp.float32))
        _setup(self, locals())

    def __call__(
        self, x: Array, use_running_average: bool | None = None, *, mask: Array | None = None
    ) -> Array:
        if use_running_average is None:
            use_running_average = self.use_running_average
        feature_axes = _axes(x.ndim, self.axis)
        _check_features(self, x, feature_axes)
        reduction_axes = tuple(a for a in range(x.ndim) if a not in feature_axes)
        scale, bias = _values(self)
        x, mean, var, scale, bias = self.promote_dtype(
            (x, self.mean.value, self.var.value, scale, bias), dtype=self.dtype
        )
        if not use_running_average:
            count = 1
            for a in reduction_axes:
                count *= x.shape[a]
            if count == 1 and self.axis_name is None:
                warnings.warn(
                    _errors.BATCH_OF_ONE.format(where=describe(self), count=count, shape=x.shape),
                    BatchOfOneWarning,
                    stacklevel=2,
                )
            mean, var = _stats(
                x,
                reduction_axes,
                self.dtype,
                use_fast_variance=self.use_fast_variance,
                axis_name=self.axis_name,
                axis_index_groups=self.axis_index_groups,
                mask=mask,
            )
            m = self.momentum
            self.mean.value = jax.lax.stop_gradient(m * self.mean.value + (1 - m) * mean)
            self.var.value = jax.lax.stop_gradient(m * self.var.value + (1 - m) * var)
        return _normalize(
            x, mean, var, scale, bias, reduction_axes, feature_axes, self.dtype, self.epsilon
        )


class LayerNorm(Module):
    """Normalise each example over its last axis (``reduction_axes``), then scale and shift.

    Params ``scale`` (ones) and ``bias`` (zeros) of shape ``(num_features,)``;
    ``epsilon`` 1e-6.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import LayerNorm
    >>> y = LayerNorm(4, rngs=Rngs(0))(jnp.array([[1.0, 2.0, 3.0, 4.0]]))
    >>> round(float(y.mean()), 6), round(float(y.std()), 3)
    (0.0, 1.0)
    """

    def __init__(
        self,
        num_features: int,
        *,
        epsilon: float = 1e-6,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        use_bias: bool = True,
        use_scale: bool = True,
        bias_init: Initializer = initializers.zeros,
        scale_init: Initializer = initializers.ones,
        reduction_axes: Axes = -1,
        feature_axes: Axes = -1,
        axis_name: str | None = None,
        use_fast_variance: bool = False,
        axis_index_groups: Any = None,
        promote_dtype: PromoteDtype = promote,
        rngs: Any,
        bias_metadata: Mapping[str, Any] = EMPTY,
        scale_metadata: Mapping[str, Any] = EMPTY,
    ):
        _setup(self, locals())

    _use_mean = True

    def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
        feature_axes = _axes(x.ndim, self.feature_axes)
        _check_features(self, x, feature_axes)
        reduction_axes = _axes(x.ndim, self.reduction_axes)
        scale, bias = _values(self)
        x, scale, bias = self.promote_dtype((x, scale, bias), dtype=self.dtype)
        mean, var = _stats(
            x,
            reduction_axes,
            self.dtype,
            use_mean=self._use_mean,
            use_fast_variance=self.use_fast_variance,
            axis_name=self.axis_name,
            axis_index_groups=self.axis_index_groups,
            mask=mask,
        )
        return _normalize(
            x, mean, var, scale, bias, reduction_axes, feature_axes, self.dtype, self.epsilon
        )


class RMSNorm(LayerNorm):
    """LayerNorm without centring: ``x / sqrt(mean(x**2) + eps) * scale``; no bias.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import RMSNorm
    >>> norm = RMSNorm(2, rngs=Rngs(0))
    >>> [round(float(v), 3) for v in norm(jnp.array([3.0, 4.0]))]
    [0.849, 1.131]
    """

    _use_mean = False

    def __init__(
        self,
        num_features: int,
        *,
        epsilon: float = 1e-6,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        use_scale: bool = True,
        scale_init: Initializer = initializers.ones,
        reduction_axes: Axes = -1,
        feature_axes: Axes = -1,
        axis_name: str | None = None,
        use_fast_variance: bool = False,
        axis_index_groups: Any = None,
        promote_dtype: PromoteDtype = promote,
        rngs: Any,
        scale_metadata: Mapping[str, Any] = EMPTY,
    ):
        super().__init__(
            num_features,
            epsilon=epsilon,
            dtype=dtype,
            param_dtype=param_dtype,
            use_bias=False,
            use_scale=use_scale,
            scale_init=scale_init,
            reduction_axes=reduction_axes,
            feature_axes=feature_axes,
            axis_name=axis_name,
            use_fast_variance=use_fast_variance,
            axis_index_groups=axis_index_groups,
            promote_dtype=promote_dtype,
            rngs=rngs,
            scale_metadata=scale_metadata,
        )
        del self.bias, self.use_bias


class GroupNorm(Module):
    """Normalise over groups of channels (and the spatial axes) of each example.

    Give ``num_groups`` (default 32) or ``group_size`` (with ``num_groups=None``).

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import GroupNorm
    >>> GroupNorm(6, num_groups=3, rngs=Rngs(0))(jnp.ones((2, 4, 4, 6))).shape
    (2, 4, 4, 6)
    """

    def __init__(
        self,
        num_features: int,
        num_groups: int | None = 32,
        group_size: int | None = None,
        *,
        epsilon: float = 1e-6,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        use_bias: bool = True,
        use_scale: bool = True,
        bias_init: Initializer = initializers.zeros,
        scale_init: Initializer = initializers.ones,
        reduction_axes: Axes | None = None,
        axis_name: str | None = None,
        use_fast_variance: bool = False,
        axis_index_groups: Any = None,
        promote_dtype: PromoteDtype = promote,
        rngs: Any,
        bias_metadata: Mapping[str, Any] = EMPTY,
        scale_metadata: Mapping[str, Any] = EMPTY,
    ):
        if (num_groups is None) == (group_size is None):
            raise _errors.LayerError(
                "GroupNorm: give exactly one of num_groups and group_size (num_groups defaults "
                "to 32: pass num_groups=None together with group_size)."
            )
        if group_size is not None:
            num_groups = num_features // group_size if num_features % group_size == 0 else 0
        if not num_groups or num_features % num_groups:
            raise _errors.LayerError(
                f"GroupNorm: num_features={num_features} does not split into "
                f"{'groups of ' + str(group_size) if group_size else str(num_groups) + ' groups'}"
                "; choose a divisor of num_features."
            )
        _setup(self, locals())
        self.num_groups = num_groups
        self.group_size = num_features // num_groups

    def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
        _check_features(self, x, (x.ndim - 1,))
        if self.reduction_axes is None:
            reduction_axes = tuple(range(1, x.ndim))
        else:
            reduction_axes = _axes(x.ndim, self.reduction_axes)
        scale, bias = _values(self)
        x, scale, bias = self.promote_dtype((x, scale, bias), dtype=self.dtype)
        grouped = x.reshape(x.shape[:-1] + (self.num_groups, self.group_size))
        if mask is not None:
            mask = jnp.broadcast_to(mask, x.shape).reshape(grouped.shape)
        group_axes = tuple(reduction_axes[:-1]) + (x.ndim,)
        mean, var = _stats(
            grouped,
            group_axes,
            self.dtype,
            use_fast_variance=self.use_fast_variance,
            axis_name=self.axis_name,
            axis_index_groups=self.axis_index_groups,
            mask=mask,
        )
        mean = jnp.repeat(mean, self.group_size, axis=-1)
        var = jnp.repeat(var, self.group_size, axis=-1)
        return _normalize(
            x, mean, var, scale, bias, reduction_axes[:-1], (x.ndim - 1,), self.dtype, self.epsilon
        )


class InstanceNorm(Module):
    """Normalise each example and channel over its spatial axes (GroupNorm with groups of 1).

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import InstanceNorm
    >>> InstanceNorm(3, rngs=Rngs(0))(jnp.ones((2, 5, 3))).shape
    (2, 5, 3)
    """

    def __init__(
        self,
        num_features: int,
        *,
        epsilon: float = 1e-6,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        use_bias: bool = True,
        use_scale: bool = True,
        bias_init: Initializer = initializers.zeros,
        scale_init: Initializer = initializers.ones,
        feature_axes: Axes = -1,
        axis_name: str | None = None,
        use_fast_variance: bool = False,
        axis_index_groups: Any = None,
        promote_dtype: PromoteDtype = promote,
        rngs: Any,
        bias_metadata: Mapping[str, Any] = EMPTY,
        scale_metadata: Mapping[str, Any] = EMPTY,
    ):
        _setup(self, locals())

    def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
        feature_axes = _axes(x.ndim, self.feature_axes)
        if 0 in feature_axes:
            raise _errors.LayerError(
                f"{describe(self)}: feature_axes {self.feature_axes} include axis 0, which is "
                "the batch axis; use the channel axes (e.g. -1)."
            )
        _check_features(self, x, feature_axes)
        reduction_axes = tuple(a for a in range(1, x.ndim) if a not in feature_axes)
        scale, bias = _values(self)
        x, scale, bias = self.promote_dtype((x, scale, bias), dtype=self.dtype)
        mean, var = _stats(
            x,
            reduction_axes,
            self.dtype,
            use_fast_variance=self.use_fast_variance,
            axis_name=self.axis_name,
            axis_index_groups=self.axis_index_groups,
            mask=mask,
        )
        return _normalize(
            x, mean, var, scale, bias, reduction_axes, feature_axes, self.dtype, self.epsilon
        )
