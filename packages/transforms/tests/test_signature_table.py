"""jit's table of argument type signatures is bounded and emptied by clear_caches()."""

from __future__ import annotations

import jax.numpy as jnp

from ramie import core
from ramie.transforms import _jit, clear_caches, jit


class Box(core.Module):
    def __init__(self):
        self.w = core.Param(jnp.arange(3.0))


def scaled(m, *ks):
    return (m.w.value * (1 + sum(ks))).sum()


def _run_with_signatures(f):
    # Five arities: five type signatures (the last-call shortcut matches none of them).
    box = Box()
    return box, [float(f(box, *[1] * n)) for n in range(5)]


def test_signatures_are_bounded_and_the_evicted_ones_still_work(monkeypatch):
    monkeypatch.setattr(_jit, "MAX_SIGNATURES", 3)
    f = jit(scaled)
    box, outs = _run_with_signatures(f)
    table = f._ramie_jit._signatures
    assert len(table) == 3
    assert (Box,) not in table and (Box, int) not in table  # the oldest went first
    assert (Box, int, int, int, int) in table
    assert outs == [3.0, 6.0, 9.0, 12.0, 15.0]
    assert float(f(box)) == 3.0  # worked out again
    assert (Box,) in table and len(table) == 3


def test_clear_caches_empties_the_signature_table():
    f = jit(scaled)
    box, _ = _run_with_signatures(f)
    assert len(f._ramie_jit._signatures) == 5
    clear_caches()
    assert len(f._ramie_jit._signatures) == 0
    assert float(f(box, 2)) == 9.0
    core.clear_caches()  # core's clear_caches empties it too
    assert len(f._ramie_jit._signatures) == 0
