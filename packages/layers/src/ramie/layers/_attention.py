"""Attention: dot_product_attention, masks, and MultiHeadAttention with a decode cache."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.nn import initializers

from ramie.core import Cache, Intermediate, Module, Rngs, RngStream

from . import _errors
from ._common import EMPTY, Array, Dtype, as_rngs, default_kernel_init, describe, promote
from ._linear import LinearGeneral
from ._normalization import LayerNorm
from ._stochastic import check_rate

Initializer = Callable[..., Array]


def _check_qkv(query: Array, key: Array, value: Array | None = None) -> None:
    arrays = [a for a in (query, key, value) if a is not None]
    if len({a.ndim for a in arrays}) != 1 or len({a.shape[:-3] for a in arrays}) != 1:
        raise _errors.LayerError(
            "dot_product_attention: query, key (and value) must have the same rank and batch "
            f"axes, shaped (batch..., length, heads, head_dim); got "
            f"{', '.join(str(tuple(a.shape)) for a in arrays)}."
        )
    if query.shape[-1] != key.shape[-1]:
        raise _errors.LayerError(
            f"dot_product_attention: query and key head_dim differ ({query.shape[-1]} vs "
            f"{key.shape[-1]}); they must match."
        )
    if value is not None and key.shape[-3] != value.shape[-3]:
        raise _errors.LayerError(
            f"dot_product_attention: key and value lengths differ ({key.shape[-3]} vs "
            f"{value.shape[-3]}); they must match."
        )


def dot_product_attention_weights(
    query: Array,
    key: Array,
    bias: Array | None = None,
    mask: Array | None = None,
    broadcast_dropout: bool = True,
    dropout_rng: Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: Dtype | None = None,
    precision: Any = None,
    module: Module | None = None,
) -> Array:
    """Softmax attention weights ``(batch..., heads, q_length, kv_length)``.

    ``query`` is ``(batch..., q_length, heads, head_dim)``, ``key``
    ``(batch..., kv_length, kv_heads, head_dim)``; ``heads`` must be a multiple
    of ``kv_heads`` (grouped-query attention). ``mask`` is True/1 where
    attention is allowed. With ``module`` given, the weights are sown there as
    the Intermediate ``attention_weights``.

    >>> import jax.numpy as jnp
    >>> from ramie.layers import dot_product_attention_weights
    >>> dot_product_attention_weights(jnp.ones((1, 3, 2, 4)), jnp.ones((1, 5, 2, 4))).shape
    (1, 2, 3, 5)
    """
    check_rate(dropout_rate, "dot_product_attention", "dropout_rate")
    query, key = promote((query, key), dtype)
    dtype = query.dtype
    _check_qkv(query, key)
    q_heads, k_heads = query.shape[-2], key.shape[-2]
    query = query / jnp.sqrt(query.shape[-1]).astype(dtype)
    if q_heads != k_heads:
        if q_heads % k_heads:
            raise _errors.LayerError(
                _errors.KV_HEADS_DIVIDE.format(heads=q_heads, kv_heads=k_heads)
            )
        grouped = query.reshape(query.shape[:-2] + (k_heads, q_heads // k_heads, query.shape[-1]))
        weights = jnp.einsum("...qhgd,...khd->...hgqk", grouped, key, precision=precision)
        weights = weights.reshape(weights.shape[:-4] + (q_heads,) + weights.shape[-2:])
    else:
        weights = jnp.einsum("...qhd,...khd->...hqk", query, key, precision=precision)
    if bias is not None:
        weights = weights + bias
    if mask is not None:
        weights = jnp.where(mask, weights, jnp.finfo(dtype).min)
    weights = jax.nn.softmax(weights).astype(dtype)
    if module is not None:
        module.sow(Intermediate, "attention_weights", weights)
    if not deterministic and dropout_rate >= 1.0:
        weights = jnp.zeros_like(weights)  # everything dropped (1 / keep_prob would be inf)
    elif not deterministic and dropout_rate > 0.0:
        keep_prob = 1.0 - dropout_rate
        if broadcast_dropout:
            shape = (1,) * (key.ndim - 2) + weights.shape[-2:]
        else:
            shape = weights.shape
        keep = jax.random.bernoulli(dropout_rng, keep_prob, shape)
        weights = weights * (keep.astype(dtype) / jnp.asarray(keep_prob, dtype=dtype))
    return weights


def dot_product_attention(
    query: Array,
    key: Array,
    value: Array,
    bias: Array | None = None,
    mask: Array | None = None,
    broadcast_dropout: bool = True,
    dropout_rng: Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: Dtype | None = None,
    precision: Any = None,
    module: Module | None = None,
) -> Array:
    """Scaled dot-product attention: ``softmax(q k^T / sqrt(d) + bias, mask) v``.

    Shapes as in :func:`dot_product_attention_weights`; ``value`` is
    ``(batch..., kv_length, kv_heads, head_dim)`` and the result
    ``(batch..., q_length, heads, head_dim)``. Without dropout or sowing, this
    calls ``jax.nn.dot_product_attention``.

    >>> import jax.numpy as jnp
    >>> from ramie.layers import dot_product_attention
    >>> q = k = v = jnp.ones((1, 4, 2, 8))
    >>> dot_product_attention(q, k, v).shape
    (1, 4, 2, 8)
    """
    query, key, value = promote((query, key, value), dtype)
    _check_qkv(query, key, value)
    if (dropout_rate == 0.0 or deterministic) and module is None and query.ndim >= 3:
        shape = query.shape
        if query.ndim > 4:
            flat = lambda x: None if x is None else x.reshape((-1,) + x.shape[-3:])  # noqa: E731
            query, key, value = flat(query), flat(key), flat(value)
            fold = lambda m: None if m is None else m.reshape((-1,) + m.shape[-3:])  # noqa: E731
            bias, mask = fold(bias), fold(mask)
        if mask is not None:
            mask = mask.astype(jnp.bool_)
        out = jax.nn.dot_product_attention(query, key, value, bias, mask)
        return out.reshape(shape[:-1] + (value.shape[-1],))
    weights = dot_product_attention_weights(
        query,
        key,
        bias,
        mask,
        broadcast_dropout,
        dropout_rng,
        dropout_rate,
        deterministic,
        dtype,
        precision,
        module,
    )
    q_heads, v_heads = weights.shape[-3], value.shape[-2]
    if q_heads != v_heads:
        grouped = weights.reshape(
            weights.shape[:-3] + (v_heads, q_heads // v_heads) + weights.shape[-2:]
        )
        out = jnp.einsum("...hgqk,...khd->...qhgd", grouped, value, precision=precision)
        return out.reshape(out.shape[:-3] + (q_heads, out.shape[-1]))
    return jnp.einsum("...hqk,...khd->...qhd", weights, value, precision=precision)


def make_attention_mask(
    query_input: Array,
    key_input: Array,
    pairwise_fn: Callable[[Array, Array], Array] = jnp.multiply,
    extra_batch_dims: int = 0,
    dtype: Dtype = jnp.float32,
) -> Array:
    """A ``(batch..., 1, q_len, kv_len)`` mask from per-position query and key values.

    >>> import jax.numpy as jnp
    >>> from ramie.layers import make_attention_mask
    >>> valid = jnp.array([[1, 1, 0]])              # the last position is padding
    >>> make_attention_mask(valid, valid)[0, 0].astype(int).tolist()
    [[1, 1, 0], [1, 1, 0], [0, 0, 0]]
    """
    mask = pairwise_fn(jnp.expand_dims(query_input, -1), jnp.expand_dims(key_input, -2))
    mask = jnp.expand_dims(mask, -3)
    mask = jnp.expand_dims(mask, tuple(range(extra_batch_dims)))
    return mask.astype(dtype)


def make_causal_mask(x: Array, extra_batch_dims: int = 0, dtype: Dtype = jnp.float32) -> Array:
    """A mask that lets position ``i`` attend to positions ``<= i`` (``x``: ``(batch..., len)``).

    >>> import jax.numpy as jnp
    >>> from ramie.layers import make_causal_mask
    >>> make_causal_mask(jnp.ones((1, 3)))[0, 0].astype(int).tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    idxs = jnp.broadcast_to(jnp.arange(x.shape[-1], dtype=jnp.int32), x.shape)
    return make_attention_mask(idxs, idxs, jnp.greater_equal, extra_batch_dims, dtype)


def combine_masks(*masks: Array | None, dtype: Dtype = jnp.float32) -> Array | None:
    """The logical AND of the masks that are not None (None when all are).

    >>> import jax.numpy as jnp
    >>> from ramie.layers import combine_masks
    >>> combine_masks(jnp.array([1, 1, 0]), None, jnp.array([0, 1, 1])).tolist()
    [0.0, 1.0, 0.0]
    """
    present = [m for m in masks if m is not None]
    if not present:
        return None
    if len({m.ndim for m in present}) != 1:
        raise _errors.LayerError(
            f"combine_masks: the masks have ranks {[m.ndim for m in present]}; they must all "
            "have the same rank (use jnp.expand_dims to align them)."
        )
    mask = present[0]
    for other in present[1:]:
        mask = jnp.logical_and(mask, other)
    return mask.astype(dtype)


def _divisors_hint(n: int, near: int) -> str:
    divs = [d for d in range(1, n + 1) if n % d == 0]
    return ", ".join(str(d) for d in sorted(divs, key=lambda d: abs(d - near))[:3])


class MultiHeadAttention(Module):
    """Multi-head attention with ``query``/``key``/``value``/``out`` projections.

    The ``query`` kernel is ``(in_features, num_heads, head_dim)``, ``key`` and
    ``value`` are ``(in_kv_features, num_kv_heads, head_dim)``, and ``out`` is
    ``(num_heads, head_dim, out_features)``, with
    ``head_dim = qkv_features // num_heads``. Call it as ``mha(q)`` (self
    attention) or ``mha(q, k, v)``, with an optional ``mask``
    (``(batch..., heads or 1, q_len, kv_len)``, True where allowed). With
    ``decode=True`` it attends one new position per call, keeping past keys and
    values in ``Cache`` variables created by ``init_cache``.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import MultiHeadAttention
    >>> mha = MultiHeadAttention(num_heads=2, in_features=8, rngs=Rngs(0))
    >>> mha.query.kernel.shape, mha.out.kernel.shape
    ((8, 2, 4), (2, 4, 8))
    >>> mha(jnp.ones((1, 5, 8))).shape
    (1, 5, 8)
    """

    def __init__(
        self,
        num_heads: int,
        in_features: int,
        qkv_features: int | None = None,
        out_features: int | None = None,
        num_kv_heads: int | None = None,
        in_kv_features: int | None = None,
        *,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        broadcast_dropout: bool = True,
        dropout_rate: float = 0.0,
        deterministic: bool = False,
        precision: Any = None,
        kernel_init: Initializer = default_kernel_init,
        out_kernel_init: Initializer | None = None,
        bias_init: Initializer = initializers.zeros,
        out_bias_init: Initializer | None = None,
        use_bias: bool = True,
        attention_fn: Callable[..., Array] = dot_product_attention,
        decode: bool = False,
        normalize_qk: bool = False,
        rngs: Any,
        keep_rngs: bool = True,
        kernel_metadata: Mapping[str, Any] = EMPTY,
        out_kernel_metadata: Mapping[str, Any] = EMPTY,
        bias_metadata: Mapping[str, Any] = EMPTY,
        out_bias_metadata: Mapping[str, Any] = EMPTY,
        query_ln_scale_metadata: Mapping[str, Any] = EMPTY,
        key_ln_scale_metadata: Mapping[str, Any] = EMPTY,
    ):
        rngs = as_rngs(rngs, type(self).__name__)
        check_rate(dropout_rate, type(self).__name__, "dropout_rate")
        self.num_heads = num_heads
        self.in_features = in_features
        self.qkv_features = qkv_features if qkv_features is not None else in_features
        self.out_features = out_features if out_features is not None else in_features
        self.in_kv_features = in_kv_features if in_kv_features is not None else in_features
        self.num_kv_heads = num_kv_heads if num_kv_heads is not None else num_heads
        if self.qkv_features % num_heads:
            raise _errors.LayerError(
                _errors.HEADS_DIVIDE.format(
                    features=self.qkv_features,
                    heads=num_heads,
                    suggestion=_divisors_hint(self.qkv_features, num_heads),
                )
            )
        if num_heads % self.num_kv_heads:
            raise _errors.LayerError(
                _errors.KV_HEADS_DIVIDE.format(heads=num_heads, kv_heads=self.num_kv_heads)
            )
        self.head_dim = self.qkv_features // num_heads
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.broadcast_dropout = broadcast_dropout
        self.dropout_rate = dropout_rate
        self.deterministic = deterministic
        self.precision = precision
        self.use_bias = use_bias
        self.attention_fn = attention_fn
        self.decode = decode
        self.normalize_qk = normalize_qk

        def proj(fin, heads):
            return LinearGeneral(
                fin,
                (heads, self.head_dim),
                use_bias=use_bias,
                dtype=dtype,
                param_dtype=param_dtype,
                precision=precision,
                kernel_init=kernel_init,
                bias_init=bias_init,
                rngs=rngs,
                kernel_metadata=kernel_metadata,
                bias_metadata=bias_metadata,
            )

        self.query = proj(in_features, num_heads)
        self.key = proj(self.in_kv_features, self.num_kv_heads)
        self.value = proj(self.in_kv_features, self.num_kv_heads)
        if normalize_qk:
            ln = dict(use_bias=False, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
            self.query_ln = LayerNorm(self.head_dim, scale_metadata=query_ln_scale_metadata, **ln)
            self.key_ln = LayerNorm(self.head_dim, scale_metadata=key_ln_scale_metadata, **ln)
        else:
            self.query_ln = None
            self.key_ln = None
        self.out = LinearGeneral(
            (num_heads, self.head_dim),
            self.out_features,
            axis=(-2, -1),
            use_bias=use_bias,
            dtype=dtype,
            param_dtype=param_dtype,
            precision=precision,
            kernel_init=out_kernel_init or kernel_init,
            bias_init=out_bias_init or bias_init,
            rngs=rngs,
            kernel_metadata=out_kernel_metadata,
            bias_metadata=out_bias_metadata,
        )
        # keep_rngs=False: no stream is stored; dropout then needs rngs= at call time
        self.rngs = rngs.dropout.fork() if dropout_rate > 0 and keep_rngs else None
        self.cached_key = None
        self.cached_value = None
        self.cache_index = None

    def __call__(
        self,
        inputs_q: Array,
        inputs_k: Array | None = None,
        inputs_v: Array | None = None,
        *,
        mask: Array | None = None,
        deterministic: bool | None = None,
        rngs: Rngs | RngStream | jax.Array | None = None,
        sow_weights: bool = False,
        decode: bool | None = None,
        is_causal: bool = False,
        out_sharding: Any = None,
        qkv_sharding: Any = None,
    ) -> Array:
        if inputs_k is None:
            if inputs_v is not None:
                raise _errors.LayerError(
                    f"{describe(self)}: inputs_v was given without inputs_k. Pass both, or "
                    "only inputs_k (it is then used for the values too)."
                )
            inputs_k = inputs_q
        if inputs_v is None:
            inputs_v = inputs_k
        if inputs_q.shape[-1] != self.in_features:
            raise _errors.LayerError(
                _errors.FEATURES_MISMATCH.format(
                    where=describe(self),
                    expected=self.in_features,
                    shape=tuple(inputs_q.shape),
                    found=inputs_q.shape[-1],
                    arg="in_features",
                )
            )
        query = self.query(inputs_q, out_sharding=qkv_sharding)
        key = self.key(inputs_k, out_sharding=qkv_sharding)
        value = self.value(inputs_v, out_sharding=qkv_sharding)
        if self.normalize_qk:
            query = self.query_ln(query)
            key = self.key_ln(key)
        if decode if decode is not None else self.decode:
            key, value, mask = self._decode_step(key, value, mask)
        elif is_causal:  # each query position sees the key positions up to its own
            q_len, kv_len = query.shape[-3], key.shape[-3]
            causal = jnp.arange(q_len)[:, None] >= jnp.arange(kv_len)[None, :]
            rank = query.ndim if mask is None else mask.ndim
            mask = combine_masks(mask, causal.reshape((1,) * (rank - 2) + causal.shape))
        deterministic = self.deterministic if deterministic is None else deterministic
        dropout_rng = None
        if self.dropout_rate > 0.0 and not deterministic:
            dropout_rng = self._dropout_key(rngs)
        else:
            deterministic = True
        x = self.attention_fn(
            query,
            key,
            value,
            mask=mask,
            dropout_rng=dropout_rng,
            dropout_rate=self.dropout_rate,
            broadcast_dropout=self.broadcast_dropout,
            deterministic=deterministic,
            dtype=self.dtype,
            precision=self.precision,
            module=self if sow_weights else None,
        )
        return self.out(x, out_sharding=out_sharding)

    def _dropout_key(self, rngs: Any) -> jax.Array:
        if rngs is None:
            rngs = self.rngs
        if isinstance(rngs, Rngs):
            return rngs.dropout()
        if isinstance(rngs, RngStream):
            return rngs()
        if rngs is None:
            raise _errors.RngStreamError(
                _errors.NO_DROPOUT_RNG.format(where=describe(self), rate=self.dropout_rate)
            )
        return rngs

    def _decode_step(self, key: Array, value: Array, mask: Array | None):
        if self.cached_key is None:
            raise _errors.LayerError(_errors.DECODE_NO_CACHE.format(where=describe(self)))
        *batch, max_length, heads, depth = self.cached_key.value.shape
        expected = (*batch, 1, heads, depth)
        if tuple(key.shape) != expected:
            raise _errors.LayerError(
                _errors.DECODE_SHAPE.format(
                    where=describe(self),
                    cache=tuple(self.cached_key.value.shape),
                    expected=expected,
                    found=tuple(key.shape),
                )
            )
        index = self.cache_index.value
        zero = jnp.zeros((), index.dtype)
        start = (zero,) * len(batch) + (index, zero, zero)
        key = lax.dynamic_update_slice(
            self.cached_key.value, key.astype(self.cached_key.dtype), start
        )
        value = lax.dynamic_update_slice(
            self.cached_value.value, value.astype(self.cached_value.dtype), start
        )
        self.cached_key.value = key
        self.cached_value.value = value
        self.cache_index.value = index + 1
        visible = jnp.broadcast_to(jnp.arange(max_length) <= index, (*batch, 1, 1, max_length))
        return key, value, combine_masks(mask, visible)

    def init_cache(self, input_shape: tuple[int, ...], dtype: Dtype = jnp.float32) -> None:
        """Create the decode cache for inputs shaped ``(batch..., max_length, features)``.

        >>> import jax.numpy as jnp
        >>> from ramie.core import Rngs
        >>> from ramie.layers import MultiHeadAttention
        >>> mha = MultiHeadAttention(2, 8, decode=True, rngs=Rngs(0))
        >>> mha.init_cache((1, 10, 8))
        >>> mha(jnp.ones((1, 1, 8))).shape, int(mha.cache_index.value)
        ((1, 1, 8), 1)
        """
        shape = (*input_shape[:-1], self.num_kv_heads, self.head_dim)
        self.cached_key = Cache(jnp.zeros(shape, dtype))
        self.cached_value = Cache(jnp.zeros(shape, dtype))
        self.cache_index = Cache(jnp.array(0, dtype=jnp.int32))
