"""Convolutions over channels-last (NHWC) inputs: Conv and ConvTranspose."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
from jax import lax

from ramie.core import Module, Param

from . import _errors
from ._common import (
    EMPTY,
    Array,
    Dtype,
    PromoteDtype,
    as_rngs,
    as_tuple,
    default_bias_init,
    default_kernel_init,
    describe,
    promote,
)

Initializer = Callable[..., Array]
PaddingLike = str | int | Sequence[int | tuple[int, int]]


def canonicalize_padding(padding: PaddingLike, rank: int) -> str | list[tuple[int, int]]:
    """``'SAME'``/``'VALID'``/``'CIRCULAR'``/..., an int, or one int or pair per spatial axis."""
    if isinstance(padding, str):
        return padding.upper()
    if isinstance(padding, int):
        return [(padding, padding)] * rank
    pads = [(p, p) if isinstance(p, int) else tuple(p) for p in padding]
    if len(pads) != rank or any(len(p) != 2 for p in pads):
        raise _errors.LayerError(
            f"Invalid padding {padding!r}: use 'SAME', 'VALID', 'CIRCULAR', 'REFLECT', "
            f"'CAUSAL', an int, or {rank} ints or (low, high) pairs (one per spatial axis)."
        )
    return pads


def _store_padding(padding: PaddingLike) -> PaddingLike:
    """``padding`` with lists made tuples (hashable, static); one int per axis stays an int."""
    if isinstance(padding, (str, int)):
        return padding
    return tuple(p if isinstance(p, int) else tuple(p) for p in padding)


def _broadcast(x: int | Sequence[int] | None, n: int) -> tuple[int, ...]:
    if x is None:
        x = 1
    return (x,) * n if isinstance(x, int) else tuple(x)


def _conv_dimension_numbers(ndim: int) -> lax.ConvDimensionNumbers:
    lhs = (0, ndim - 1) + tuple(range(1, ndim - 1))
    rhs = (ndim - 1, ndim - 2) + tuple(range(ndim - 2))
    return lax.ConvDimensionNumbers(lhs, rhs, lhs)


def _check_input(layer: Any, inputs: Array) -> int:
    """Check rank and channels; return the number of batch axes."""
    nd = len(layer.kernel_size)
    shape = tuple(inputs.shape)
    if inputs.ndim < nd + 1:
        raise _errors.LayerError(
            _errors.CONV_RANK.format(
                where=describe(layer),
                nd=nd,
                kernel_size=layer.kernel_size,
                spatial=", ".join("..." for _ in range(nd)),
                features=layer.in_features,
                min_rank=nd + 1,
                shape=shape,
            )
        )
    if shape[-1] != layer.in_features:
        n_batch = inputs.ndim - nd - 1
        if n_batch >= 1 and shape[n_batch] == layer.in_features:
            raise _errors.LayerError(
                _errors.CONV_CHANNELS_FIRST.format(
                    where=describe(layer), expected=layer.in_features, shape=shape, axis=n_batch
                )
            )
        raise _errors.LayerError(
            _errors.FEATURES_MISMATCH.format(
                where=describe(layer),
                expected=layer.in_features,
                shape=shape,
                found=shape[-1],
                arg="in_features",
            )
        )
    return inputs.ndim - nd - 1


def _flatten_batch(inputs: Array, n_batch: int) -> tuple[Array, tuple | None]:
    if n_batch == 1:
        return inputs, None
    return jnp.reshape(inputs, (-1,) + inputs.shape[n_batch:]), inputs.shape[:n_batch]


def _unflatten_batch(y: Array, batch_shape: tuple | None) -> Array:
    return y if batch_shape is None else jnp.reshape(y, batch_shape + y.shape[1:])


class Conv(Module):
    """An N-d convolution over channels-last inputs ``(batch..., spatial..., features)``.

    Parameters: ``kernel`` of shape ``kernel_size + (in_features //
    feature_group_count, out_features)`` and ``bias`` ``(out_features,)``.
    ``padding`` is ``'SAME'``, ``'VALID'``, ``'CIRCULAR'``, ``'REFLECT'``,
    ``'CAUSAL'`` (1-d), an int, or one int / ``(low, high)`` pair per spatial axis.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import Conv
    >>> conv = Conv(3, 8, (3, 3), strides=2, rngs=Rngs(0))
    >>> conv.kernel.shape, conv(jnp.ones((1, 16, 16, 3))).shape
    ((3, 3, 3, 8), (1, 8, 8, 8))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] | None = 1,
        *,
        padding: PaddingLike = "SAME",
        input_dilation: int | Sequence[int] | None = 1,
        kernel_dilation: int | Sequence[int] | None = 1,
        feature_group_count: int = 1,
        use_bias: bool = True,
        mask: Array | None = None,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        precision: Any = None,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        promote_dtype: PromoteDtype = promote,
        preferred_element_type: Dtype | None = None,
        rngs: Any,
        kernel_metadata: Mapping[str, Any] = EMPTY,
        bias_metadata: Mapping[str, Any] = EMPTY,
    ):
        rngs = as_rngs(rngs, type(self).__name__)
        if in_features % feature_group_count or out_features % feature_group_count:
            raise _errors.LayerError(
                f"Conv: in_features={in_features} and out_features={out_features} must both "
                f"divide by feature_group_count={feature_group_count}."
            )
        self.kernel_size = as_tuple(kernel_size)
        self.kernel_shape = self.kernel_size + (in_features // feature_group_count, out_features)
        self.kernel = Param(
            kernel_init(rngs.params(), self.kernel_shape, param_dtype), **kernel_metadata
        )
        self.bias = (
            Param(bias_init(rngs.params(), (out_features,), param_dtype), **bias_metadata)
            if use_bias
            else None
        )
        self.promote_dtype = promote_dtype
        self.preferred_element_type = preferred_element_type
        self.in_features = in_features
        self.out_features = out_features
        self.strides = strides
        self.padding = _store_padding(padding)
        self.input_dilation = input_dilation
        self.kernel_dilation = kernel_dilation
        self.feature_group_count = feature_group_count
        self.use_bias = use_bias
        if mask is not None and tuple(mask.shape) != self.kernel_shape:
            raise _errors.LayerError(
                f"Conv: mask has shape {tuple(mask.shape)} but the kernel has shape "
                f"{self.kernel_shape}; they must match."
            )
        self.mask = mask
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = precision

    def __call__(self, inputs: Array, *, out_sharding: Any = None) -> Array:
        n_batch = _check_input(self, inputs)
        nd = len(self.kernel_size)
        inputs, batch_shape = _flatten_batch(inputs, n_batch)
        strides = _broadcast(self.strides, nd)
        input_dilation = _broadcast(self.input_dilation, nd)
        kernel_dilation = _broadcast(self.kernel_dilation, nd)
        padding = canonicalize_padding(self.padding, nd)
        if padding in ("CIRCULAR", "REFLECT"):
            dilated = [
                (k - 1) * d + 1 for k, d in zip(self.kernel_size, kernel_dilation, strict=True)
            ]
            pads = [(0, 0)] + [((k - 1) // 2, k // 2) for k in dilated] + [(0, 0)]
            mode = "wrap" if padding == "CIRCULAR" else "reflect"
            inputs = jnp.pad(inputs, pads, mode=mode)
            padding = "VALID"
        elif padding == "CAUSAL":
            if nd != 1:
                raise _errors.LayerError(
                    f"{describe(self)}: padding='CAUSAL' is only for 1-d convolutions."
                )
            left = kernel_dilation[0] * (self.kernel_size[0] - 1)
            inputs = jnp.pad(inputs, [(0, 0), (left, 0), (0, 0)])
            padding = "VALID"
        kernel = self.kernel.value
        if self.mask is not None:
            kernel = kernel * self.mask
        bias = self.bias.value if self.bias is not None else None
        inputs, kernel, bias = self.promote_dtype((inputs, kernel, bias), dtype=self.dtype)
        y = lax.conv_general_dilated(
            inputs,
            kernel,
            strides,
            padding,
            lhs_dilation=input_dilation,
            rhs_dilation=kernel_dilation,
            dimension_numbers=_conv_dimension_numbers(inputs.ndim),
            feature_group_count=self.feature_group_count,
            precision=self.precision,
            preferred_element_type=self.preferred_element_type,
            out_sharding=out_sharding,
        )
        if bias is not None:
            y = y + bias
        return _unflatten_batch(y, batch_shape)


class ConvTranspose(Module):
    """A transposed ("fractionally strided") convolution over channels-last inputs.

    Parameters: ``kernel`` of shape ``kernel_size + (in_features, out_features)``
    (``(out_features, in_features)`` with ``transpose_kernel=True``) and ``bias``.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import ConvTranspose
    >>> up = ConvTranspose(4, 2, (2, 2), strides=2, rngs=Rngs(0))
    >>> up(jnp.ones((1, 5, 5, 4))).shape
    (1, 10, 10, 2)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] | None = None,
        *,
        padding: PaddingLike = "SAME",
        kernel_dilation: int | Sequence[int] | None = None,
        use_bias: bool = True,
        mask: Array | None = None,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        precision: Any = None,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        transpose_kernel: bool = False,
        promote_dtype: PromoteDtype = promote,
        preferred_element_type: Dtype | None = None,
        rngs: Any,
        kernel_metadata: Mapping[str, Any] = EMPTY,
        bias_metadata: Mapping[str, Any] = EMPTY,
    ):
        rngs = as_rngs(rngs, type(self).__name__)
        self.kernel_size = as_tuple(kernel_size)
        if transpose_kernel:
            self.kernel_shape = self.kernel_size + (out_features, in_features)
        else:
            self.kernel_shape = self.kernel_size + (in_features, out_features)
        self.kernel = Param(
            kernel_init(rngs.params(), self.kernel_shape, param_dtype), **kernel_metadata
        )
        self.bias = (
            Param(bias_init(rngs.params(), (out_features,), param_dtype), **bias_metadata)
            if use_bias
            else None
        )
        self.promote_dtype = promote_dtype
        self.preferred_element_type = preferred_element_type
        self.in_features = in_features
        self.out_features = out_features
        self.strides = strides
        self.padding = _store_padding(padding)
        self.kernel_dilation = kernel_dilation
        self.use_bias = use_bias
        self.mask = mask
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = precision
        self.transpose_kernel = transpose_kernel

    def __call__(self, inputs: Array) -> Array:
        n_batch = _check_input(self, inputs)
        nd = len(self.kernel_size)
        inputs, batch_shape = _flatten_batch(inputs, n_batch)
        strides = _broadcast(self.strides, nd)
        kernel_dilation = _broadcast(self.kernel_dilation, nd)
        kernel = self.kernel.value
        if self.mask is not None:
            kernel = kernel * self.mask
        padding = canonicalize_padding(self.padding, nd)
        circular = padding == "CIRCULAR"
        if circular:
            padding = "VALID"
        bias = self.bias.value if self.bias is not None else None
        inputs, kernel, bias = self.promote_dtype((inputs, kernel, bias), dtype=self.dtype)
        y = lax.conv_transpose(
            inputs,
            kernel,
            strides,
            padding,
            rhs_dilation=kernel_dilation,
            transpose_kernel=self.transpose_kernel,
            precision=self.precision,
            preferred_element_type=self.preferred_element_type,
        )
        if circular:
            y = _wrap_around(y, inputs.shape[1:-1], strides, self.transpose_kernel)
        if bias is not None:
            y = y + bias
        return _unflatten_batch(y, batch_shape)


def _wrap_around(y: Array, in_spatial: tuple, strides: tuple, transpose_kernel: bool) -> Array:
    """Fold a VALID transposed convolution's output onto ``input * stride`` periodically."""
    target = [n * s for n, s in zip(in_spatial, strides, strict=True)]
    diffs = [-(got - want) % (2 * want) for got, want in zip(y.shape[1:-1], target, strict=True)]
    if transpose_kernel:
        pads = [(d // 2, (d + 1) // 2) for d in diffs]
    else:
        pads = [((d + 1) // 2, d // 2) for d in diffs]
    y = jnp.pad(y, [(0, 0)] + pads + [(0, 0)])
    for i in range(1, y.ndim - 1):
        y = y.reshape(y.shape[:i] + (-1, target[i - 1]) + y.shape[i + 1 :])
        y = y.sum(axis=i)
    return y
