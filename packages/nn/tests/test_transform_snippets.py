"""Snippets from issue 11 (transforms half), run through ``from ramie import nn``."""

import jax
import jax.numpy as jnp
import numpy as np

from ramie import nn


def test_grad_of_a_split_state_as_the_readme_teaches():
    g, p = nn.split(nn.Linear(2, 3, rngs=nn.Rngs(0)), nn.Param)
    got = nn.grad(lambda p: nn.merge(g, p)(jnp.ones((1, 2))).sum())(p)
    want = jax.grad(lambda p: nn.merge(g, p)(jnp.ones((1, 2))).sum())(p)
    assert isinstance(got, nn.State)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    np.testing.assert_allclose(got["kernel"].value, want["kernel"].value, rtol=1e-6)
    np.testing.assert_allclose(got["bias"].value, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(got["kernel"].value, jnp.ones((2, 3)))


def test_value_and_grad_of_an_nn_dict_and_a_bare_variable():
    d = nn.Dict(w=nn.Param(jnp.array([1.0, 2.0])))
    v = nn.Param(jnp.array(3.0))
    (value, aux), (g_d, g_v) = nn.value_and_grad(
        lambda d, v: (jnp.sum(d["w"].value) * v.value, "aux"), argnums=(0, 1), has_aux=True
    )(d, v)
    assert float(value) == 9.0 and aux == "aux"
    assert type(g_d["w"]) is nn.Param and type(g_v) is nn.Param
    np.testing.assert_allclose(g_d["w"].value, [3.0, 3.0])
    assert float(g_v.value) == 3.0


def test_vmap_of_one_module_with_two_in_axes_is_an_error():
    m = nn.vmap(lambda k: nn.Linear(2, 2, rngs=nn.Rngs(k)))(jnp.arange(2))
    try:
        nn.vmap(lambda a, b: a.kernel.value, in_axes=(0, 1))(m, m)
    except nn.TransformArgumentError as e:
        message = str(e)
    else:
        raise AssertionError("no error")
    assert "the same Linear" in message
    assert "args[0] with in_axes 0, args[1] with in_axes 1" in message


def test_jit_static_argnames_by_position_and_none():
    def f(x, flag):
        return x if flag else -x

    assert float(nn.jit(f, static_argnames=("flag",))(jnp.array(2.0), True)) == 2.0
    g = nn.jit(lambda x, flag: jnp.where(flag, x, -x), static_argnames=None)
    assert float(g(jnp.array(2.0), jnp.array(False))) == -2.0
