"""Wrappers that renormalise a wrapped layer's weights on every call: SpectralNorm, WeightNorm.

Both follow Flax NNX: ``__call__`` computes the normalised value of each
selected Param of ``layer_instance``, writes it back into that Param, then
calls the layer. The per-Param state (SpectralNorm's ``u`` and ``sigma``,
WeightNorm's ``scales``) lives in nested dicts that follow the Param's path
inside the wrapped layer, e.g. ``batch_stats/kernel/u`` or ``scales/kernel``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
from jax import lax
from jax.nn import initializers

from ramie.core import BatchStat, Module, Param, PathContains, state, to_predicate

from . import _errors
from ._common import Array, Dtype, PromoteDtype, as_rngs, describe, promote

Initializer = Callable[..., Array]
Path = tuple
KERNELS = PathContains("kernel")  # WeightNorm's default variable_filter

__all__ = ["SpectralNorm", "WeightNorm"]


def _key_order(path: Path) -> tuple:
    return tuple((0, k, "") if isinstance(k, int) else (1, 0, str(k)) for k in path)


def _wrapped_params(wrapper: Module, layer: Module) -> list[tuple[Path, Param]]:
    """The wrapped layer's Params as (path inside the layer, the live Variable), sorted by path."""
    if not isinstance(layer, Module):
        raise _errors.LayerTypeError(
            _errors.NOT_A_LAYER.format(wrapper=type(wrapper).__name__, found=type(layer).__name__)
        )
    paths = sorted(state(layer, Param).flat_state(), key=_key_order)
    out = []
    for path in paths:
        obj: Any = layer
        for key in path:
            obj = getattr(obj, key) if isinstance(obj, Module) else obj[key]
        out.append((path, obj))
    return out


def _show(path: Path) -> str:
    return "/".join(map(str, ("layer_instance", *path)))


def _store(tree: dict, path: Path, value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _fetch(wrapper: Module, tree: Any, path: Path, what: str) -> Any:
    try:
        for key in path:
            tree = tree[key]
    except (KeyError, IndexError, TypeError):
        raise _errors.LayerError(
            _errors.WRAPPED_PARAM_CHANGED.format(
                where=describe(wrapper), path=_show(path), what=what
            )
        ) from None
    return tree


def _l2_normalize(x: Array, axis: tuple[int, ...] | None, eps: float) -> Array:
    return x * lax.rsqrt(jnp.sum(x * x, axis=axis, keepdims=True) + eps)


def _as_matrix(wrapper: SpectralNorm, path: Path, value: Array) -> Array | None:
    """The 2-D view power iteration works on, or None for a Param it leaves alone."""
    if value.ndim <= 1 or wrapper.n_steps < 1:
        return None
    if value.ndim > 2:
        if wrapper.error_on_non_matrix:
            raise _errors.LayerError(
                _errors.SPECTRAL_NON_MATRIX.format(
                    where=describe(wrapper),
                    path=_show(path),
                    ndim=value.ndim,
                    shape=tuple(value.shape),
                    last=value.shape[-1],
                )
            )
        return jnp.reshape(value, (-1, value.shape[-1]))
    return value


class SpectralNorm(Module):
    """Divide each matrix Param of ``layer_instance`` by its largest singular value, then call it.

    The singular value ``sigma`` is estimated by ``n_steps`` of power iteration
    from a stored vector ``u`` (shape ``(1, out)``); ``u`` and ``sigma`` are
    BatchStats at ``batch_stats/<param path>/u`` and ``.../sigma``, updated
    only when ``update_stats`` is true (the default in train mode;
    ``model.eval()`` turns it off, as does ``layer(x, update_stats=False)``).
    Params of 0 or 1 axes are left alone; higher-order ones (conv kernels) are
    viewed as ``(-1, out)`` matrices, or rejected with
    ``error_on_non_matrix=True``. As in Flax NNX, the normalised value is
    written back into the wrapped Param (in its own storage dtype) before the
    layer is called, and gradients flow through the division by ``sigma``.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import Linear, SpectralNorm
    >>> rngs = Rngs(0)
    >>> layer = SpectralNorm(Linear(4, 3, rngs=rngs), n_steps=20, rngs=rngs)
    >>> layer(jnp.ones((2, 4))).shape
    (2, 3)
    >>> round(float(jnp.linalg.norm(layer.layer_instance.kernel.value, ord=2)), 3)
    1.0
    >>> sorted(layer.batch_stats["kernel"])
    ['sigma', 'u']
    """

    def __init__(
        self,
        layer_instance: Module,
        *,
        n_steps: int = 1,
        epsilon: float = 1e-12,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        error_on_non_matrix: bool = False,
        update_stats: bool = True,
        rngs: Any,
    ):
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
            raise _errors.LayerError(_errors.SPECTRAL_STEPS.format(found=repr(n_steps)))
        rngs = as_rngs(rngs, type(self).__name__)
        self.n_steps = n_steps
        self.epsilon = epsilon
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.error_on_non_matrix = error_on_non_matrix
        self.use_running_average = not update_stats  # so that train() / eval() flip it
        stats: dict = {}
        for path, param in _wrapped_params(self, layer_instance):
            matrix = _as_matrix(self, path, param.value)
            if matrix is None:
                continue
            key = rngs.params()
            u = initializers.normal()(key, (1, matrix.shape[-1]), param_dtype)
            _store(stats, path, {"u": BatchStat(u), "sigma": BatchStat(jnp.ones((), param_dtype))})
        self.layer_instance = layer_instance
        self.batch_stats = stats

    def __call__(self, x: Array, update_stats: bool | None = None, **kwargs: Any) -> Any:
        """Normalise the wrapped Params, then return ``layer_instance(x, **kwargs)``."""
        if update_stats is None:
            update_stats = not self.use_running_average
        for path, param in _wrapped_params(self, self.layer_instance):
            self._normalize(path, param, update_stats)
        return self.layer_instance(x, **kwargs)

    def _normalize(self, path: Path, param: Param, update_stats: bool) -> None:
        original = param.value
        matrix = _as_matrix(self, path, original)
        if matrix is None:
            return
        stats = _fetch(self, self.batch_stats, path, "u and sigma BatchStats")
        u_stat, sigma_stat = stats["u"], stats["sigma"]
        u = u_stat.value
        v = None
        for _ in range(self.n_steps):
            v = _l2_normalize(u @ matrix.T, None, self.epsilon)
            u = _l2_normalize(v @ matrix, None, self.epsilon)
        u, v = lax.stop_gradient(u), lax.stop_gradient(v)
        sigma = (v @ matrix @ u.T)[0, 0]
        normalized = (matrix / jnp.where(sigma != 0, sigma, 1)).reshape(original.shape)
        if update_stats:
            u_stat.value = u
            sigma_stat.value = sigma
        dtype = self.dtype or jnp.result_type(normalized, u, v, sigma)
        param.value = jnp.asarray(jnp.asarray(normalized, dtype), original.dtype)


class WeightNorm(Module):
    """Rescale selected Params of ``layer_instance`` to a learned norm per feature, then call it.

    For each Param that ``variable_filter`` selects (by default those whose
    path contains ``"kernel"``), the value is L2-normalised over every axis
    but ``feature_axes`` and multiplied by a scale of shape
    ``param.shape[feature_axes]`` (``scale_init``, ones by default). The
    scales are Params at ``scales/<param path>``, so an Optimizer trains them
    (Flax NNX keeps them as plain arrays, which ``wrt=Param`` does not train).
    ``feature_axes=None`` normalises the whole Param with one scalar scale.
    As in Flax NNX, the normalised value is written back into the wrapped
    Param (in its own storage dtype) before the layer is called.

    >>> import jax.numpy as jnp
    >>> from ramie.core import Rngs
    >>> from ramie.layers import Linear, WeightNorm
    >>> rngs = Rngs(0)
    >>> layer = WeightNorm(Linear(4, 3, rngs=rngs), rngs=rngs)
    >>> layer.scales["kernel"].value.shape
    (3,)
    >>> layer(jnp.ones((2, 4))).shape
    (2, 3)
    >>> [round(float(n), 3) for n in jnp.linalg.norm(layer.layer_instance.kernel.value, axis=0)]
    [1.0, 1.0, 1.0]
    """

    def __init__(
        self,
        layer_instance: Module,
        *,
        feature_axes: int | Sequence[int] | None = -1,
        use_scale: bool = True,
        scale_init: Initializer = initializers.ones,
        epsilon: float = 1e-12,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        variable_filter: Any = KERNELS,
        promote_dtype: PromoteDtype = promote,
        rngs: Any,
    ):
        rngs = as_rngs(rngs, type(self).__name__)
        self.feature_axes = () if feature_axes is None else feature_axes
        self.use_scale = use_scale
        self.scale_init = scale_init
        self.epsilon = epsilon
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.variable_filter = variable_filter
        self.promote_dtype = promote_dtype
        params = _wrapped_params(self, layer_instance)
        selected = self._selected(params)
        if not selected:
            raise _errors.LayerError(
                _errors.WEIGHT_NORM_NOTHING_SELECTED.format(
                    where=type(self).__name__,
                    filter=repr(variable_filter),
                    layer=type(layer_instance).__name__,
                    paths=", ".join("/".join(map(str, p)) for p, _ in params) or "none",
                )
            )
        scales: dict = {}
        for path, param in selected:
            feature = self._feature_axes(path, param.value.ndim)
            if use_scale:
                shape = tuple(param.value.shape[a] for a in feature)
                _store(scales, path, Param(scale_init(rngs.params(), shape, param_dtype)))
        self.layer_instance = layer_instance
        self.scales = scales if use_scale else None

    def _selected(self, params: list[tuple[Path, Param]]) -> list[tuple[Path, Param]]:
        keep = to_predicate(self.variable_filter)
        return [(path, param) for path, param in params if keep(path, param)]

    def _feature_axes(self, path: Path, ndim: int) -> tuple[int, ...]:
        axes = self.feature_axes
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
        if any(not -ndim <= a < ndim for a in axes):
            raise _errors.LayerError(
                _errors.WEIGHT_NORM_AXES.format(
                    where=describe(self), axes=self.feature_axes, path=_show(path), ndim=ndim
                )
            )
        return tuple(sorted(a % ndim for a in axes))

    def __call__(self, x: Array, *args: Any, **kwargs: Any) -> Any:
        """Normalise the selected Params, then return ``layer_instance(x, *args, **kwargs)``."""
        for path, param in self._selected(_wrapped_params(self, self.layer_instance)):
            self._normalize(path, param)
        return self.layer_instance(x, *args, **kwargs)

    def _normalize(self, path: Path, param: Param) -> None:
        original = param.value
        feature = self._feature_axes(path, original.ndim)
        reduction = tuple(a for a in range(original.ndim) if a not in feature)
        scale = None
        if self.use_scale:
            scale = _fetch(self, self.scales, path, "scale Param").value
            shape = [original.shape[a] if a in feature else 1 for a in range(original.ndim)]
            scale = scale.reshape(shape)
        value, scale = self.promote_dtype((original, scale), dtype=self.dtype)
        normalized = _l2_normalize(value, reduction, self.epsilon)
        if scale is not None:
            normalized = normalized * scale
        param.value = jnp.asarray(normalized, original.dtype)
