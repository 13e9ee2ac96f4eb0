"""ramie.layers: Flax-compatible layers (Linear, Conv, BatchNorm, attention, RNNs, LoRA, ...).

Every layer is a ``ramie.core.Module`` initialised eagerly from ``rngs``, with
``dtype`` (computation) and ``param_dtype`` (storage), and Flax NNX's parameter
names, shapes and defaults, so a Flax NNX checkpoint loads into the ramie layer
of the same configuration. Activations are jax.nn's own (``build`` knows them by name);
``initializers`` are jax.nn's under Flax NNX's names.

>>> import jax.numpy as jnp
>>> from ramie.core import Rngs
>>> from ramie import layers
>>> rngs = Rngs(0)
>>> model = layers.Sequential(layers.Linear(2, 16, rngs=rngs), layers.gelu,
...                           layers.Linear(16, 3, rngs=rngs))
>>> model(jnp.ones((4, 2))).shape
(4, 3)
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from jax.nn import (
    celu,
    elu,
    gelu,
    glu,
    hard_sigmoid,
    hard_silu,
    hard_swish,
    hard_tanh,
    identity,
    leaky_relu,
    log_sigmoid,
    log_softmax,
    logsumexp,
    one_hot,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    soft_sign,
    softmax,
    softplus,
    standardize,
    swish,
)
from jax.numpy import tanh

from . import initializers
from ._activations import ACTIVATIONS, Activation, PReLU
from ._attention import (
    MultiHeadAttention,
    combine_masks,
    dot_product_attention,
    dot_product_attention_weights,
    make_attention_mask,
    make_causal_mask,
)
from ._common import promote as promote_dtype
from ._conv import Conv, ConvTranspose
from ._errors import LayerError, LayerTypeError
from ._linear import Einsum, Embed, Linear, LinearGeneral
from ._lora import LoRA, LoRALinear, LoRAParam
from ._normalization import (
    BatchNorm,
    BatchOfOneWarning,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    RMSNorm,
)
from ._pooling import avg_pool, max_pool, min_pool, pool
from ._recurrent import (
    RNN,
    Bidirectional,
    GRUCell,
    LSTMCell,
    OptimizedLSTMCell,
    SimpleCell,
    flip_sequences,
)
from ._sequential import Sequential
from ._stochastic import Dropout
from ._weight_norms import SpectralNorm, WeightNorm

try:
    __version__: str = _version("ramie-layers")
except _PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "BatchNorm",
    "BatchOfOneWarning",
    "Bidirectional",
    "Conv",
    "ConvTranspose",
    "Dropout",
    "Einsum",
    "Embed",
    "GRUCell",
    "GroupNorm",
    "InstanceNorm",
    "LSTMCell",
    "OptimizedLSTMCell",
    "LayerError",
    "LayerNorm",
    "LayerTypeError",
    "Linear",
    "LinearGeneral",
    "LoRA",
    "LoRALinear",
    "LoRAParam",
    "MultiHeadAttention",
    "PReLU",
    "RMSNorm",
    "RNN",
    "Sequential",
    "SimpleCell",
    "SpectralNorm",
    "WeightNorm",
    "avg_pool",
    "celu",
    "combine_masks",
    "dot_product_attention",
    "dot_product_attention_weights",
    "elu",
    "flip_sequences",
    "gelu",
    "glu",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "identity",
    "initializers",
    "leaky_relu",
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "make_attention_mask",
    "make_causal_mask",
    "max_pool",
    "min_pool",
    "one_hot",
    "promote_dtype",
    "pool",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "soft_sign",
    "softmax",
    "softplus",
    "standardize",
    "swish",
    "tanh",
]

# --- the plug-in registry and build() (keep this block together, at the end) ---
from ._build import LayerConfigError, build  # noqa: E402
from ._plugins import PluginError, PluginInfo, PluginWarning, hookimpl, hookspec  # noqa: E402
from ._registry import (  # noqa: E402
    DuplicateLayerError,
    LayerRegistry,
    Origin,
    ProtectedLayerError,
    UnknownLayerError,
    registry,
)

__all__ += [
    "DuplicateLayerError",
    "LayerConfigError",
    "LayerRegistry",
    "Origin",
    "PluginError",
    "PluginInfo",
    "PluginWarning",
    "ProtectedLayerError",
    "UnknownLayerError",
    "build",
    "hookimpl",
    "hookspec",
    "registry",
]
