"""Error types and the long messages ramie.layers raises.

Each message says which layer (its type and, when it was called inside a
model, its attribute path), what it expected, what it got, and the likely fix.
Messages are module-level constants so tests can assert on them.
"""

from __future__ import annotations

from ramie.core import RamieError, RngStreamError

__all__ = ["LayerError", "LayerTypeError", "RngStreamError"]


class LayerError(RamieError, ValueError):
    """A layer was built with, or given, something it cannot work with."""


class LayerTypeError(LayerError, TypeError):
    """A layer was given a value of the wrong type or dtype."""


FEATURES_MISMATCH = (
    "{where} expected inputs whose last axis has {expected} features but got an array of "
    "shape {shape} (last axis {found}). Pass inputs of shape (..., {expected}), or build the "
    "layer for {found} input features ({arg}={found})."
)

CONV_CHANNELS_FIRST = (
    "{where} expected {expected} input channels on the last axis but got an array of shape "
    "{shape}, whose axis {axis} has {expected}: this looks like channels-first (NCHW) input. "
    "ramie convolutions are channels-last (NHWC): move the channels to the end, e.g. "
    "jnp.moveaxis(x, {axis}, -1)."
)

CONV_RANK = (
    "{where} has a {nd}-d kernel {kernel_size}, so it expects inputs of shape (batch..., "
    "{spatial}, {features}) with at least {min_rank} axes; got shape {shape}. Add a batch "
    "axis or check kernel_size."
)

NORM_FEATURES = (
    "{where} was built for {expected} features on axis {axis} but got an array of shape "
    "{shape} with {found} there. Build it with num_features={found}, or pass inputs whose "
    "axis {axis} has {expected} features."
)

EMBED_INDICES = (
    "{where} looks up rows of its (num_embeddings, features) table by integer index, but got "
    "{dtype} inputs of shape {shape}. Cast the indices: x.astype(jnp.int32). To map vectors "
    "to logits over the vocabulary (a tied output layer), use embed.attend(x)."
)

HEADS_DIVIDE = (
    "MultiHeadAttention: qkv_features={features} does not divide by num_heads={heads}, so the "
    "heads cannot have equal size. Choose num_heads among the divisors of {features} "
    "(e.g. {suggestion}), or set qkv_features to a multiple of {heads}."
)

KV_HEADS_DIVIDE = (
    "MultiHeadAttention: num_heads={heads} is not a multiple of num_kv_heads={kv_heads}; "
    "grouped-query attention shares each key/value head among an equal number of query "
    "heads. Choose num_kv_heads among the divisors of {heads}."
)

NO_DROPOUT_RNG = (
    "{where} is in training mode (deterministic=False) with rate={rate} but has no RNG stream "
    "to draw its mask from. Build it with one, e.g. Dropout({rate}, rngs=Rngs(0, dropout=1)) "
    "(or pass rngs= to the model that creates it), pass a key at call time "
    "(layer(x, rngs=key)), or switch to evaluation mode with model.eval()."
)

BAD_DROPOUT_RATE = (
    "{layer}: {arg}={rate!r} is not a probability; it must be a number in [0, 1] (the "
    "fraction of values dropped: 0 keeps everything, 1 drops everything)."
)

BATCH_OF_ONE = (
    "{where} normalises over {count} value(s) per feature in training mode (input shape "
    "{shape}): the batch variance is 0, so the running variance decays towards 0 and "
    "evaluation outputs blow up. Train with more than one example per batch, normalise "
    "over more axes, or use LayerNorm/GroupNorm, which do not depend on the batch."
)

NOT_RNGS = (
    "{layer}(..., rngs=...) takes a ramie.core.Rngs (e.g. rngs=Rngs(0)) or a PRNG key "
    "(jax.random.key(0)); got {found}. Wrap a seed or key in Rngs: rngs=Rngs({hint})."
)

SEQUENTIAL_ARITY = (
    "{where}: layer {index} ({layer}) cannot be called with {given}. {origin} Make the "
    "previous layer return what this one takes (a tuple is passed on as several positional "
    "arguments), or wrap the layer in a function that adapts the arguments. ({error})"
)

DECODE_NO_CACHE = (
    "{where} is in decode mode but has no key/value cache. Call "
    "layer.init_cache((batch, max_length, features)) before decoding, or pass decode=False."
)

DECODE_SHAPE = (
    "{where} decodes one step at a time: with a cache of shape {cache} it expects keys of "
    "shape {expected} but got {found}. Feed one position per call, with the batch shape "
    "given to init_cache."
)

CARRY_NEEDS_RNGS = (
    "{where}.initialize_carry() was given a random carry_init but no rngs to draw from. "
    "Pass rngs=Rngs(0) (or a key) along with carry_init."
)

NOT_A_LAYER = (
    "{wrapper} wraps a layer instance (a ramie Module such as Linear or Conv) but got "
    "{found}. Build the layer first and pass it: {wrapper}(Linear(4, 3, rngs=rngs), rngs=rngs)."
)

SPECTRAL_STEPS = (
    "SpectralNorm: n_steps is the number of power-iteration steps per call, a non-negative "
    "int, but got {found}. Pass e.g. n_steps=1 (0 leaves the Params unnormalised)."
)

SPECTRAL_NON_MATRIX = (
    "{where}: the wrapped Param at '{path}' is {ndim}-D (shape {shape}) but "
    "error_on_non_matrix=True, and spectral normalisation is defined on matrices. Pass "
    "error_on_non_matrix=False to view it as a (-1, {last}) matrix, or wrap a layer whose "
    "Params have at most 2 axes."
)

WEIGHT_NORM_NOTHING_SELECTED = (
    "{where}: variable_filter={filter} selects none of the wrapped {layer}'s Params "
    "({paths}), so nothing would be normalised. Pass a filter that matches one of them, "
    "e.g. variable_filter=PathContains('kernel')."
)

WEIGHT_NORM_AXES = (
    "{where}: feature_axes={axes} is out of range for the wrapped Param at '{path}', which "
    "has {ndim} axes. Pass axes in [-{ndim}, {ndim}), or feature_axes=None for one scale "
    "over the whole Param."
)

WRAPPED_PARAM_CHANGED = (
    "{where} has no {what} for the wrapped Param at '{path}': the wrapped layer's Params "
    "changed after the wrapper was built. Build the wrapper again around the changed layer."
)
