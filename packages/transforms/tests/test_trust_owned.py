"""Objects built inside a transform by merge/clone belong to it and may be mutated (issue 11)."""

import jax
import jax.numpy as jnp
import numpy as np

from ramie import core
from ramie import transforms as tx
from ramie.core import extend


class Linear(core.Module):
    def __init__(self, din, dout, *, rngs):
        self.kernel = core.Param(jax.random.normal(rngs.params(), (din, dout)))
        self.bias = core.Param(jnp.zeros((dout,)))


def test_a_module_merged_inside_jit_can_be_mutated_there():
    gd, st = core.split(Linear(2, 3, rngs=core.Rngs(0)))

    @tx.jit
    def zero_first(st):
        m = core.merge(gd, st)
        m.kernel.__setitem__((0, 0), 0.0)  # the snippet, a false CapturedMutationError
        return m.kernel.value

    out = zero_first(st)
    assert float(out[0, 0]) == 0.0
    np.testing.assert_array_equal(out[1], st["kernel"].value[1])
    assert float(st["kernel"].value[0, 0]) != 0.0  # the State passed in is not changed


def test_a_clone_made_inside_eval_shape_can_be_used_to_build_a_module():
    rngs = core.Rngs(0)
    abstract = tx.eval_shape(lambda: Linear(2, 3, rngs=core.clone(rngs)))
    assert abstract.kernel.value.shape == (2, 3)
    assert int(rngs.params.count.value) == 0  # the captured Rngs was not advanced


def test_objects_merged_inside_a_transform_are_owned_only_there():
    gd, st = core.split(Linear(2, 3, rngs=core.Rngs(0)))
    made = []

    def f(x):
        with extend.transform_frame("jit") as frame:
            m = core.merge(gd, st)
            made.append(m)
            assert {id(m.kernel), id(m.bias)} <= frame.owned
            m.bias.value = x
            return m.bias.value

    np.testing.assert_array_equal(jax.jit(f)(jnp.ones(3)), np.ones(3))
    outside = core.merge(gd, st)  # no frame: nothing to own, nothing refused
    outside.bias.value = jnp.ones(3)
    assert core._frames.frames() == []
