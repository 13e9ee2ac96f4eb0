"""Core's per-type tables (static classification, node kinds) are bounded and cleared."""

from __future__ import annotations

import gc
import weakref

import jax.numpy as jnp

from ramie import core
from ramie.core import _graph, _statics


class Holder(core.Module):
    def __init__(self, static):
        self.w = core.Param(jnp.ones(2))
        self.static = static


def _new_type(i: int) -> type:
    return type(f"Tag{i}", (), {"__slots__": ()})  # hashed by identity, no __dict__: static


def test_a_type_seen_by_flatten_is_in_both_tables_until_clear_caches():
    tag = _new_type(0)
    core.flatten(Holder(tag()))
    assert _statics._OK[tag] is True
    assert _graph._KINDS[tag] == _graph._STATIC
    core.clear_caches()
    assert tag not in _statics._OK and tag not in _graph._KINDS
    assert len(_statics._OK) == 0 and len(_graph._KINDS) == 0


def test_the_tables_keep_no_type_alive_after_clear_caches():
    tag = _new_type(1)
    core.flatten(Holder(tag()))
    ref = weakref.ref(tag)
    del tag
    core.clear_caches()
    gc.collect()
    assert ref() is None


def test_the_tables_are_bounded():
    for i in range(_statics._OK.size + 50):
        _statics.is_ok(_new_type(i))
        _graph._kind_of(_new_type(i))
    assert len(_statics._OK) == _statics._OK.size == 1024
    assert len(_graph._KINDS) == _graph._KINDS.size == 1024


def test_a_classification_dropped_from_the_table_is_worked_out_again():
    class Config:  # hashed by identity, mutable attributes: refused as static
        pass

    assert _statics.is_ok(Config) is False
    core.clear_caches()
    assert _statics.is_ok(Config) is False
    assert _statics._OK[Config] is False
