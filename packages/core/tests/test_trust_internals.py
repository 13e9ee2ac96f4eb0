"""Readable internals: generated builders show their source; merge's try is narrow (issue 11)."""

import linecache
import traceback

import jax.numpy as jnp
import pytest

from ramie import core


class Strict(tuple):
    """A tuple subclass whose constructor takes two arguments (not an iterable)."""

    def __new__(cls, a, b):
        return super().__new__(cls, (a, b))


class M(core.Module):
    def __init__(self):
        self.w = core.Param(jnp.ones(2))
        self.pair = Strict(1, 2)


def test_a_real_type_error_in_merge_propagates_instead_of_mismatch_not_explained():
    graphdef, state = core.split(M())
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'b'"):
        core.merge(graphdef, state)


def test_tracebacks_into_generated_builders_show_the_generated_line():
    graphdef, state = core.split(M())
    with pytest.raises(TypeError) as info:
        core.merge(graphdef, state)
    frames = [f for f in traceback.extract_tb(info.tb) if f.filename.startswith("<ramie generated")]
    (frame,) = frames
    assert "_tuple(" in frame.line
    assert linecache.getline(frame.filename, frame.lineno).strip() == frame.line


def test_a_state_mismatch_is_still_explained():
    graphdef, state = core.split(core.Module())
    m = M()
    m.pair = (1, 2)
    g2, _ = core.split(m)
    with pytest.raises(core.GraphError, match="expects a Variable at 'w'"):
        core.merge(g2, state)
