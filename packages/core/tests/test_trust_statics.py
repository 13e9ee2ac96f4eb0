"""Static attributes cannot go stale: mutable identity-hashed objects are refused (issue 11)."""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import pytest

from ramie import core


class Config:
    def __init__(self):
        self.scale = 2.0


@dataclasses.dataclass(frozen=True)
class Frozen:
    scale: float = 2.0


@dataclasses.dataclass(unsafe_hash=True)
class Unsafe:
    scale: float = 2.0


class Pair(NamedTuple):
    scale: float
    name: str


class M(core.Module):
    def __init__(self):
        self.w = core.Param(jnp.ones(()))
        self.xs = []


def test_a_mutable_config_hashed_by_identity_is_refused_at_assignment():
    m = M()
    with pytest.raises(core.MutableStaticError) as info:
        m.cfg = Config()
    assert str(info.value) == core._errors.MUTABLE_STATIC.format(
        where="Module attribute 'M.cfg'", type_name="Config"
    )
    assert "frozen dataclass" in str(info.value)
    assert "cfg" not in vars(m)


def test_one_inside_a_container_is_refused_at_the_walk_naming_its_path():
    m = M()
    m.xs.append({"cfg": Config()})
    with pytest.raises(core.MutableStaticError) as info:
        core.state(m)
    assert str(info.value) == core._errors.MUTABLE_STATIC.format(
        where="The attribute at 'xs/0/cfg'", type_name="Config"
    )


def test_a_mutable_dataclass_with_a_hash_is_refused():
    with pytest.raises(core.MutableStaticError, match="'M.cfg' holds a Unsafe"):
        M().cfg = Unsafe()


@pytest.mark.parametrize(
    "value",
    [
        Frozen(),
        Pair(2.0, "x"),
        1,
        "relu",
        None,
        jnp.float32,
        jax.nn.relu,
        functools.partial(jax.nn.gelu, approximate=False),
        jax.lax.Precision.HIGHEST,
        jax.sharding.PartitionSpec("a"),
        (1, ("x", 2.0)),
    ],
)
def test_immutable_statics_are_accepted(value):
    m = M()
    m.cfg = value
    g = core.graphdef(m)
    assert core.merge(g, core.state(m)).cfg == value
