"""Which ramie package provides which name, and loading whatever is installed."""

from __future__ import annotations

import dataclasses
import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

# Every sibling the facade loads needs only ramie-core besides third-party packages, and
# ramie-core is installed wherever ramie.nn imports: so installing the one local path works
# (pip finds nothing on the index to look for). After `nox -s build`, dist/ holds the wheels.
NOT_INSTALLED_HINT = (
    "Install it from the root of a ramie checkout: pip install ./packages/{dir} "
    "(or, with the wheels built by `python3 noxfile.py -s build`: "
    "pip install --find-links dist {dist})"
)


@dataclasses.dataclass
class Package:
    module: str
    dist: str
    expected: tuple[str, ...]
    loaded: bool = False
    names: tuple[str, ...] = ()
    error: str = ""

    @property
    def directory(self) -> str:
        """The package's directory under ``packages/`` in a checkout (``ramie.layers``: layers)."""
        return self.module.rsplit(".", 1)[1]


# The names each package is planned to provide (DESIGN.md), so that asking
# for one whose package is missing says which distribution to install.
PACKAGES = [
    Package(
        "ramie.layers",
        "ramie-layers",
        (
            "Linear", "LinearGeneral", "Einsum", "Embed", "Conv", "ConvTranspose",
            "BatchNorm", "LayerNorm", "RMSNorm", "GroupNorm", "InstanceNorm", "Dropout",
            "MultiHeadAttention", "dot_product_attention", "make_attention_mask",
            "make_causal_mask", "combine_masks", "LSTMCell", "GRUCell", "SimpleCell", "RNN",
            "Bidirectional", "LoRA", "LoRALinear", "LoRAParam", "Sequential", "PReLU",
            "avg_pool", "max_pool", "min_pool", "pool", "relu", "gelu", "silu", "swish",
            "softmax", "log_softmax", "sigmoid", "tanh", "elu", "leaky_relu", "one_hot",
            "initializers", "registry", "build", "hookimpl", "hookspec", "LayerRegistry",
            "Origin", "PluginInfo", "PluginWarning", "PluginError", "DuplicateLayerError",
            "UnknownLayerError", "LayerConfigError", "LayerError", "LayerTypeError",
            "dot_product_attention_weights", "flip_sequences", "celu", "glu", "hard_sigmoid",
            "hard_silu", "hard_swish", "hard_tanh", "identity", "log_sigmoid", "logsumexp",
            "relu6", "selu", "soft_sign", "softplus", "standardize", "ACTIVATIONS",
            "Activation", "BatchOfOneWarning", "ProtectedLayerError", "promote_dtype",
            "OptimizedLSTMCell", "SpectralNorm", "WeightNorm",
        ),
    ),
    Package(
        "ramie.transforms",
        "ramie-transforms",
        (
            "jit", "grad", "value_and_grad", "vjp", "jvp", "custom_vjp", "vmap", "scan",
            "remat", "cond", "switch", "fori_loop", "while_loop", "eval_shape", "shard_map",
            "Carry", "StateAxes", "split_rngs", "CarryError", "StructureChangedError",
            "TransformArgumentError", "clear_caches", "pmap", "make_jaxpr", "checkify",
            "DiffState", "cached_partial", "jit_partial", "PARTITION_NAME",
        ),
    ),
    Package(
        "ramie.training",
        "ramie-training",
        (
            "Optimizer", "OptState", "metrics", "EMA", "TrainingError", "ModelAndOptimizer",
            "Metric", "MultiMetric",
        ),
    ),
    Package(
        "ramie.serialization",
        "ramie-serialization",
        (
            "serialization", "to_bytes", "from_bytes", "msgpack_serialize", "msgpack_restore",
            "to_state_dict", "from_state_dict", "save_safetensors", "load_safetensors",
            "CheckpointManager", "CheckpointCorruptError", "CheckpointError",
            "MalformedDataError", "RestoreMismatchWarning", "SerializationError",
            "StateMismatchError", "UnsupportedTypeError", "flatten_keys",
            "from_torch_state_dict", "register_serialization_state",
        ),
    ),
]  # fmt: skip


def load(namespace: dict[str, Any]) -> str:
    """Import every installed ramie package and copy its public names into ``namespace``."""
    for pkg in PACKAGES:
        try:
            module = importlib.import_module(pkg.module)
        except ImportError as e:
            pkg.error = str(e)
            continue
        pkg.loaded = True
        pkg.names = tuple(getattr(module, "__all__", ()))
        for name in pkg.names:
            namespace[name] = getattr(module, name)
        namespace.setdefault(pkg.module.rsplit(".", 1)[1], module)
    try:
        return version("ramie")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def _installed_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def missing_name(name: str) -> Exception:
    """The error for ``nn.<name>`` when no installed package provides it."""
    for pkg in PACKAGES:
        if name not in pkg.expected:
            continue
        if not pkg.loaded:
            return ImportError(
                f"ramie.nn.{name} comes from {pkg.dist}, which is not installed "
                f"({pkg.error}). " + NOT_INSTALLED_HINT.format(dist=pkg.dist, dir=pkg.directory)
            )
        return AttributeError(
            f"ramie.nn.{name} comes from {pkg.dist}, but the installed {pkg.dist} "
            f"{_installed_version(pkg.dist)} does not provide it yet. Upgrade it: "
            f"pip install -U {pkg.dist}"
        )
    return AttributeError(f"module 'ramie.nn' has no attribute {name!r}")
