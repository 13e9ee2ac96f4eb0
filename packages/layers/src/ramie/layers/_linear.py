"""Dense layers: Linear, LinearGeneral, Einsum, and the Embed lookup table."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.nn import initializers

from ramie.core import Module, Param, VariableMetadata

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


def _product_options(layer: Module, out_sharding: Any) -> dict[str, Any]:
    """The keyword arguments of the layer's dot_general / einsum."""
    return {
        "precision": layer.precision,
        "preferred_element_type": layer.preferred_element_type,
        "out_sharding": out_sharding,
    }


class Linear(Module):
    """A dense layer ``y = x @ kernel + bias`` over the last axis of ``x``.

    Parameters: ``kernel`` of shape ``(in_features, out_features)``
    (lecun_normal) and ``bias`` of shape ``(out_features,)`` (zeros), stored in
    ``param_dtype``; the computation runs in ``dtype`` (default: the inputs' and
    parameters' common dtype).

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import Linear
    >>> layer = Linear(3, 4, rngs=Rngs(0))
    >>> layer.kernel.shape, layer.bias.shape
    ((3, 4), (4,))
    >>> layer(jnp.ones((2, 3))).shape
    (2, 4)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool = True,
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
        self.kernel = Param(
            kernel_init(rngs.params(), (in_features, out_features), param_dtype), **kernel_metadata
        )
        self.bias = (
            Param(bias_init(rngs.params(), (out_features,), param_dtype), **bias_metadata)
            if use_bias
            else None
        )
        self.in_features = in_features
        self.out_features = out_features
        self.use_bias = use_bias
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = precision
        self.promote_dtype = promote_dtype
        self.preferred_element_type = preferred_element_type

    def __call__(self, inputs: Array, *, out_sharding: Any = None) -> Array:
        if inputs.shape[-1:] != (self.in_features,):
            raise _errors.LayerError(
                _errors.FEATURES_MISMATCH.format(
                    where=describe(self),
                    expected=self.in_features,
                    shape=tuple(inputs.shape),
                    found=inputs.shape[-1] if inputs.ndim else "none",
                    arg="in_features",
                )
            )
        bias = self.bias.value if self.bias is not None else None
        x, kernel, bias = self.promote_dtype((inputs, self.kernel.value, bias), dtype=self.dtype)
        dims = (((x.ndim - 1,), (0,)), ((), ()))
        y = lax.dot_general(x, kernel, dims, **_product_options(self, out_sharding))
        if bias is not None:
            y = y + bias
        return y


def _reshaped_init(init: Initializer, shape: tuple, flat_shape: tuple) -> Initializer:
    def wrapped(key, _shape, dtype):
        value = init(key, flat_shape, dtype)
        if isinstance(value, VariableMetadata):  # from with_partitioning: keep its metadata
            return VariableMetadata(jnp.reshape(value.value, shape), value.metadata)
        return jnp.reshape(value, shape)

    return wrapped


class LinearGeneral(Module):
    """A dense layer over several axes at once, with several output axes.

    ``in_features`` are the sizes of the contracted ``axis`` (axes) of the
    input, ``out_features`` the shape the output gets in their place.
    ``batch_axis`` maps leading input axes to sizes that get their own kernel.
    The kernel has shape ``batch sizes + in_features + out_features`` and is
    initialised as a 2-d ``(fan_in, fan_out)`` matrix, then reshaped.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import LinearGeneral
    >>> layer = LinearGeneral(6, (2, 3), rngs=Rngs(0))   # 6 features -> 2 heads of 3
    >>> layer.kernel.shape, layer(jnp.ones((5, 6))).shape
    ((6, 2, 3), (5, 2, 3))
    """

    def __init__(
        self,
        in_features: int | Sequence[int],
        out_features: int | Sequence[int],
        *,
        axis: int | Sequence[int] = -1,
        batch_axis: Mapping[int, int] | None = None,
        use_bias: bool = True,
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
        self.in_features = as_tuple(in_features)
        self.out_features = as_tuple(out_features)
        self.axis = as_tuple(axis)
        self.batch_axis = tuple(sorted((batch_axis or {}).items()))
        if len(self.in_features) != len(self.axis):
            raise _errors.LayerError(
                f"LinearGeneral: in_features {self.in_features} and axis {self.axis} must have "
                "the same length (one size per contracted axis)."
            )
        batch_dims = [k for k, _ in self.batch_axis]
        if batch_dims and batch_dims != list(range(len(batch_dims))):
            raise _errors.LayerError(
                f"LinearGeneral: batch_axis keys {batch_dims} must be the leading axes "
                f"0..{len(batch_dims) - 1}."
            )
        batch_shape = tuple(v for _, v in self.batch_axis)
        kernel_shape = (*batch_shape, *self.in_features, *self.out_features)
        flat = (
            int(np.prod(batch_shape)) * int(np.prod(self.in_features)),
            int(np.prod(self.out_features)),
        )
        init = _reshaped_init(kernel_init, kernel_shape, flat)
        self.kernel = Param(init(rngs.params(), kernel_shape, param_dtype), **kernel_metadata)
        if use_bias:
            bias_shape = (*batch_shape, *self.out_features)
            binit = _reshaped_init(bias_init, bias_shape, (int(np.prod(bias_shape)),))
            self.bias = Param(binit(rngs.params(), bias_shape, param_dtype), **bias_metadata)
        else:
            self.bias = None
        self.use_bias = use_bias
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = precision
        self.promote_dtype = promote_dtype
        self.preferred_element_type = preferred_element_type

    def __call__(self, inputs: Array, *, out_sharding: Any = None) -> Array:
        ndim = inputs.ndim
        axis = tuple(sorted(a % ndim for a in self.axis))
        found = tuple(inputs.shape[a] for a in axis)
        if found != self.in_features:
            raise _errors.LayerError(
                f"{describe(self)} contracts axes {self.axis} of sizes {self.in_features} but "
                f"got an array of shape {tuple(inputs.shape)} (sizes {found} there). Pass "
                f"inputs with those sizes, or build the layer with in_features={found}."
            )
        n_batch = len(self.batch_axis)
        batch_axis = tuple(k % ndim for k, _ in self.batch_axis)
        expanded = tuple(
            inputs.shape[a] if a in batch_axis else 1 for a in range(ndim) if a not in axis
        )
        bias = self.bias.value if self.bias is not None else None
        x, kernel, bias = self.promote_dtype((inputs, self.kernel.value, bias), dtype=self.dtype)
        contract = tuple(range(n_batch, n_batch + len(axis)))
        dims = ((axis, contract), (batch_axis, tuple(range(n_batch))))
        y = lax.dot_general(x, kernel, dims, **_product_options(self, out_sharding))
        if bias is not None:
            y = y + jnp.reshape(bias, (*expanded, *self.out_features))
        return y


def _bias_shape(einsum_str: str, kernel_shape: tuple, out_ndim: int) -> list[int]:
    """Where the kernel's axes land in the output, as a broadcastable shape for the bias.

    Letters of the kernel operand keep their sizes; an ellipsis in the kernel
    stands for its unnamed axes, which broadcast right-aligned into the
    output's ellipsis axes; every other output axis gets size 1.
    """
    operands, result = einsum_str.split("->")
    rhs = operands.split(",")[1]
    named = rhs.replace("...", "")
    n_ellipsis = len(kernel_shape) - len(named) if "..." in rhs else 0
    if "..." in rhs:
        head, tail = rhs.split("...")
        sizes = dict(zip(head, kernel_shape[: len(head)], strict=True))
        sizes.update(zip(tail, kernel_shape[len(head) + n_ellipsis :], strict=True))
        ellipsis_sizes = list(kernel_shape[len(head) : len(head) + n_ellipsis])
    else:
        sizes = dict(zip(named, kernel_shape, strict=True))
        ellipsis_sizes = []
    if "..." in result:
        head, tail = result.split("...")
    else:
        head, tail = result, ""
    middle = out_ndim - len(head) - len(tail)
    ellipsis = [1] * (middle - len(ellipsis_sizes)) + ellipsis_sizes[
        max(0, len(ellipsis_sizes) - middle) :
    ]
    return [sizes.get(c, 1) for c in head] + ellipsis + [sizes.get(c, 1) for c in tail]


def _check_einsum(einsum_str: str) -> str:
    einsum_str = einsum_str.replace(" ", "")
    if "->" not in einsum_str or einsum_str.count(",") != 1:
        raise _errors.LayerError(
            f"Einsum: the equation {einsum_str!r} must be explicit, with two operands (the "
            "input and the kernel) and an output, e.g. 'bti,ihd->bthd'."
        )
    return einsum_str


class Einsum(Module):
    """``y = einsum(einsum_str, x, kernel) (+ bias)`` with a kernel of ``kernel_shape``.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import Einsum
    >>> layer = Einsum("btd,dhk->bthk", (8, 2, 4), (2, 4), rngs=Rngs(0))
    >>> layer(jnp.ones((1, 5, 8))).shape
    (1, 5, 2, 4)
    """

    def __init__(
        self,
        einsum_str: str,
        kernel_shape: Sequence[int],
        bias_shape: Sequence[int] | None = None,
        *,
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
        self.einsum_str = _check_einsum(einsum_str)
        self.kernel_shape = tuple(kernel_shape)
        self.bias_shape = tuple(bias_shape) if bias_shape is not None else None
        self.kernel = Param(
            kernel_init(rngs.params(), self.kernel_shape, param_dtype), **kernel_metadata
        )
        if self.bias_shape is not None:
            self.bias = Param(
                bias_init(rngs.params(), self.bias_shape, param_dtype), **bias_metadata
            )
        else:
            self.bias = None
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = precision
        self.promote_dtype = promote_dtype
        self.preferred_element_type = preferred_element_type

    def __call__(
        self, inputs: Array, einsum_str: str | None = None, *, out_sharding: Any = None
    ) -> Array:
        eq = self.einsum_str if einsum_str is None else _check_einsum(einsum_str)
        bias = self.bias.value if self.bias is not None else None
        x, kernel, bias = self.promote_dtype((inputs, self.kernel.value, bias), dtype=self.dtype)
        y = jnp.einsum(eq, x, kernel, **_product_options(self, out_sharding))
        if bias is not None:
            shape = _bias_shape(eq, self.kernel_shape, y.ndim)
            if int(np.prod(shape)) == bias.size:
                bias = jnp.reshape(bias, shape)
            y = y + bias  # otherwise plain (right-aligned) broadcasting, as numpy would
        return y


default_embed_init = initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)


class Embed(Module):
    """A lookup table: integer indices to ``features``-long vectors.

    Parameter: ``embedding`` of shape ``(num_embeddings, features)``.
    ``attend(x)`` multiplies by the transposed table, for output layers whose
    weights are tied to the input embedding.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import Embed
    >>> embed = Embed(10, 4, rngs=Rngs(0))
    >>> h = embed(jnp.array([[1, 2, 3]]))
    >>> h.shape, embed.attend(h).shape
    ((1, 3, 4), (1, 3, 10))
    """

    def __init__(
        self,
        num_embeddings: int,
        features: int,
        *,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        embedding_init: Initializer = default_embed_init,
        promote_dtype: PromoteDtype = promote,
        rngs: Any,
        embedding_metadata: Mapping[str, Any] = EMPTY,
    ):
        rngs = as_rngs(rngs, type(self).__name__)
        self.embedding = Param(
            embedding_init(rngs.params(), (num_embeddings, features), param_dtype),
            **embedding_metadata,
        )
        self.promote_dtype = promote_dtype
        self.num_embeddings = num_embeddings
        self.features = features
        self.dtype = dtype if dtype is not None else self.embedding.value.dtype
        self.param_dtype = param_dtype

    def __call__(self, inputs: Array) -> Array:
        if not jnp.issubdtype(inputs.dtype, jnp.integer):
            raise _errors.LayerTypeError(
                _errors.EMBED_INDICES.format(
                    where=describe(self), dtype=inputs.dtype, shape=tuple(inputs.shape)
                )
            )
        (embedding,) = self.promote_dtype((self.embedding.value,), dtype=self.dtype, inexact=False)
        if self.num_embeddings == 1:
            return jnp.broadcast_to(embedding, inputs.shape + (self.features,))
        return jnp.take(embedding, inputs, axis=0)

    def attend(self, query: Array) -> Array:
        """``query @ embedding.T``: scores of ``query`` against every embedding row."""
        query, embedding = self.promote_dtype((query, self.embedding.value), dtype=self.dtype)
        return jnp.dot(query, embedding.T)
