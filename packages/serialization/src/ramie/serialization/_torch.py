"""Map a PyTorch-style state dict onto ramie (Flax-layout) parameters.

PyTorch names and lays out parameters differently from ramie's layers, which
keep Flax's conventions:

============================  ==================================  ==========================
PyTorch                       ramie                               layout change
============================  ==================================  ==========================
Linear ``weight (out, in)``   Linear ``kernel (in, out)``         transpose
Conv ``weight (O, I, *k)``    Conv ``kernel (*k, I, O)``          OIHW -> HWIO
BatchNorm/LayerNorm weight    ``scale``                           none
BatchNorm ``running_mean``    ``mean`` (``running_var``: var)     none
Embedding ``weight``          ``embedding``                       none
``bias``                      ``bias``                            none
============================  ==================================  ==========================

``num_batches_tracked`` is dropped. Module prefixes (``features.0``) are kept,
so the target's structure must use the same names (``rename`` maps prefixes
that differ).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ._safetensors import flatten_keys, unflatten_keys
from ._state_dict import convert, restore_values

_LEAF_NAMES = {"running_mean": "mean", "running_var": "var"}


def _kernel_from_torch(w: np.ndarray) -> np.ndarray:
    if w.ndim == 2:  # Linear: (out, in) -> (in, out)
        return w.T
    # Conv: (out, in, *spatial) -> (*spatial, in, out)
    return w.transpose((*range(2, w.ndim), 1, 0))


def from_torch_state_dict(
    torch_state: Mapping[str, Any],
    target: Any,
    *,
    rename: Mapping[str, str] | None = None,
    skip: Iterable[str] | Callable[[str], bool] = ("num_batches_tracked",),
    strict: bool = True,
) -> Any:
    """Restore a PyTorch-style ``state_dict`` (names -> arrays) into ``target``.

    ``torch_state`` maps dotted names (``"fc.weight"``) to arrays; torch tensors
    work if they convert with ``np.asarray`` (``t.detach().cpu().numpy()``).
    ``target`` is the ramie State (or abstract State) to fill. Each ``weight``
    goes to ``kernel`` (transposed: Linear ``(out, in)`` to ``(in, out)``, Conv
    ``OIHW`` to ``HWIO``), ``scale`` or ``embedding``, whichever the target has
    at that module; ``running_mean``/``running_var`` go to ``mean``/``var``.
    ``rename`` replaces name prefixes first (``{"features": "layers"}``); names
    whose last part is in ``skip`` (or for which ``skip(name)`` is true) are dropped.
    Shapes and keys are then checked as in ``from_state_dict``.

    >>> import numpy as np
    >>> from ramie.serialization import from_torch_state_dict
    >>> torch_sd = {"fc.weight": np.ones((3, 2)), "fc.bias": np.zeros(3)}
    >>> target = {"fc": {"kernel": np.zeros((2, 3)), "bias": np.zeros(3)}}
    >>> from_torch_state_dict(torch_sd, target)["fc"]["kernel"].shape
    (2, 3)
    """
    flat_target = flatten_keys(target)
    dropped = skip if callable(skip) else (lambda name, s=frozenset(skip): name.split(".")[-1] in s)
    flat: dict[str, Any] = {}
    for name, value in torch_state.items():
        if dropped(name):
            continue
        for old, new in (rename or {}).items():
            if name == old or name.startswith(old + "."):
                name = new + name[len(old) :]
                break
        prefix, _, leaf = name.rpartition(".")
        base = prefix + "." if prefix else ""
        array = np.asarray(value)
        if leaf == "weight":
            for candidate in ("kernel", "scale", "embedding"):
                if base + candidate in flat_target:
                    leaf = candidate
                    break
            if leaf == "kernel" and array.ndim >= 2:
                array = _kernel_from_torch(array)
        else:
            leaf = _LEAF_NAMES.get(leaf, leaf)
        flat[base + leaf] = array
    return restore_values(
        target,
        unflatten_keys(flat, source="the torch state dict"),
        strict=strict,
        what="from_torch_state_dict()",
        load=convert,
    )
