"""ramie.serialization: Flax-compatible msgpack, safetensors and atomic checkpoints.

Bytes are exactly what ``flax.serialization`` writes for the same pure dict, so
files move both ways between Flax and ramie; a ramie ``State`` serializes as its
pure dict. Reading never unpickles or imports anything, and malformed input
raises ``MalformedDataError``.

>>> import jax, jax.numpy as jnp
>>> from ramie import core, serialization
>>> class Model(core.Module):
...     def __init__(self, rngs):
...         self.w = core.Param(jax.random.normal(rngs.params(), (2, 3)))
>>> model = Model(core.Rngs(0))
>>> data = serialization.to_bytes(core.state(model))
>>> abstract = jax.eval_shape(lambda: core.state(Model(core.Rngs(1))))
>>> restored = serialization.from_bytes(abstract, data)
>>> bool((restored.w.value == model.w.value).all())
True
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from ._checkpoint import CheckpointManager, StepStatus
from ._errors import (
    CheckpointCorruptError,
    CheckpointError,
    MalformedDataError,
    RestoreMismatchWarning,
    SerializationError,
    StateMismatchError,
    UnsupportedTypeError,
)
from ._msgpack import from_bytes, msgpack_restore, msgpack_serialize, to_bytes
from ._safetensors import flatten_keys, load_safetensors, save_safetensors
from ._sharded import restore_sharded, save_sharded, saved_arrays
from ._state_dict import from_state_dict, register_serialization_state, to_state_dict
from ._torch import from_torch_state_dict

try:
    __version__ = _version("ramie-serialization")
except _PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "CheckpointCorruptError",
    "CheckpointError",
    "CheckpointManager",
    "MalformedDataError",
    "RestoreMismatchWarning",
    "SerializationError",
    "StateMismatchError",
    "StepStatus",
    "UnsupportedTypeError",
    "flatten_keys",
    "from_bytes",
    "from_state_dict",
    "from_torch_state_dict",
    "load_safetensors",
    "msgpack_restore",
    "msgpack_serialize",
    "register_serialization_state",
    "restore_sharded",
    "save_safetensors",
    "save_sharded",
    "saved_arrays",
    "to_bytes",
    "to_state_dict",
]
