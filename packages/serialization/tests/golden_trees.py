"""The small trees whose bytes are committed under ``golden/`` (see make_golden.py)."""

import numpy as np


def trees() -> dict:
    """Name -> tree. Built from fixed numbers only, so the bytes never change."""
    return {
        "empty": {},
        "scalars": {"int": 7, "neg": -300, "float": 2.5, "bool": True, "none": None, "str": "hi"},
        "arrays": {
            "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
            "i8": np.array([-1, 0, 1], dtype=np.int8),
            "u16": np.array([[65535]], dtype=np.uint16),
            "bool": np.array([True, False]),
            "f64_0d": np.array(1.5),
            "empty": np.zeros((0, 4), dtype=np.float32),
        },
        "numpy_scalar_and_complex": {"s": np.float32(3.0), "i": np.int64(-2), "c": 1.0 - 2.0j},
        "nested_lists": {"layers": [{"w": np.ones(2, np.float32)}, {"w": np.zeros(2, np.float32)}]},
    }
