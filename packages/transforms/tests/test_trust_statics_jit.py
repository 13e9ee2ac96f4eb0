"""nn.jit never reuses a trace after a static attribute changed (issue 11 saw 2.0 vs 9.0)."""

import dataclasses

import jax.numpy as jnp
import pytest

from ramie import core
from ramie import transforms as tx


@dataclasses.dataclass(frozen=True)
class Config:
    scale: float = 2.0


class M(core.Module):
    def __init__(self):
        self.w = core.Param(jnp.ones(()))
        self.scale = 2.0
        self.cfg = Config()


def test_a_static_written_through_dunder_dict_retraces():
    m = M()
    f = tx.jit(lambda m: m.w.value * m.scale)
    assert float(f(m)) == 2.0
    m.__dict__["scale"] = 9.0
    assert float(f(m)) == 9.0 == float(m.w.value * m.scale)
    vars(m).update(scale=4.0)
    assert float(f(m)) == 4.0


def test_a_frozen_config_replaced_retraces_and_in_place_changes_are_impossible():
    m = M()
    f = tx.jit(lambda m: m.w.value * m.cfg.scale)
    assert float(f(m)) == 2.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.cfg.scale = 9.0
    m.cfg = dataclasses.replace(m.cfg, scale=9.0)
    assert float(f(m)) == 9.0


def test_the_issue_config_object_is_refused_before_it_can_go_stale():
    class Mutable:
        scale = 2.0

    with pytest.raises(core.MutableStaticError, match="'M.cfg' holds a Mutable"):
        M().cfg = Mutable()
