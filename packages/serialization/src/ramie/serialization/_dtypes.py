"""The dtypes ramie writes and reads, by name, and the checks on array headers.

A dtype name read from a file is looked up in a fixed table and never passed to
``np.dtype`` as free text: object, string, structured and unknown dtypes are
refused before any memory is allocated.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

_NUMPY_NAMES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
)
# Extended dtypes that jax.numpy exposes (from ml_dtypes); the ones this jax lacks are skipped.
_JAX_NAMES = (
    "bfloat16",
    "float8_e3m4",
    "float8_e4m3",
    "float8_e4m3b11fnuz",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "float4_e2m1fn",
    "int2",
    "int4",
    "uint2",
    "uint4",
)


def _table() -> dict[str, np.dtype]:
    table = {name: np.dtype(name) for name in _NUMPY_NAMES}
    for name in _JAX_NAMES:
        scalar_type = getattr(jnp, name, None)
        if scalar_type is not None:
            table[name] = np.dtype(scalar_type)
    return table


DTYPES: dict[str, np.dtype] = _table()
SUPPORTED = ", ".join(DTYPES)
MAX_NDIM = 32
MAX_DIM = 2**62


def dtype_by_name(name: str) -> np.dtype | None:
    """The dtype called ``name`` in the table, or None when it is not one we read."""
    return DTYPES.get(name)


def is_supported(dtype: np.dtype) -> bool:
    """Whether arrays of ``dtype`` can be written (and read back)."""
    return DTYPES.get(dtype.name) == dtype


def is_key_dtype(dtype) -> bool:
    """Whether ``dtype`` is a typed JAX PRNG key dtype (``key<fry>``)."""
    try:
        return jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    except TypeError:
        return False


def key_data_shape(dtype) -> tuple[int, ...]:
    """The trailing shape raw key data adds for the key dtype ``dtype`` (``(2,)`` for threefry)."""
    return tuple(_impl(dtype).key_shape)


def _impl(dtype):
    return dtype._impl  # the PRNGImpl of a key dtype; jax has no public accessor for it


def wrap_key_data(data, dtype):
    """Turn raw key data back into typed keys of the key dtype ``dtype``."""
    return jax.random.wrap_key_data(data, impl=_impl(dtype))


def check_header(shape: object, name: object, nbytes: int) -> tuple[tuple[int, ...], np.dtype]:
    """Validate an array header (shape, dtype name) against the bytes that hold its data.

    Returns ``(shape, dtype)``; raises ``ValueError`` with the reason otherwise.
    Nothing here allocates more than the header itself.
    """
    if isinstance(name, bytes):
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"the dtype name {name[:40]!r} is not ASCII") from None
    if not isinstance(name, str):
        raise ValueError(f"the dtype name is a {type(name).__name__}, not a string")
    dtype = dtype_by_name(name)
    if dtype is None:
        raise ValueError(f"the dtype {name[:40]!r} is not one ramie reads ({SUPPORTED})")
    if not isinstance(shape, (list, tuple)):
        raise ValueError(f"the shape is a {type(shape).__name__}, not a list of ints")
    if len(shape) > MAX_NDIM:
        raise ValueError(f"the shape has {len(shape)} dimensions (at most {MAX_NDIM})")
    dims = []
    for d in shape:
        if type(d) is not int or not 0 <= d < MAX_DIM:
            raise ValueError(f"the shape {list(shape)[:8]} holds {d!r}, not a non-negative int")
        dims.append(d)
    expected = math.prod(dims) * dtype.itemsize
    if expected != nbytes:
        raise ValueError(
            f"an array of shape {tuple(dims)} and dtype {name} needs {expected} bytes, "
            f"but {nbytes} are given"
        )
    return tuple(dims), dtype
