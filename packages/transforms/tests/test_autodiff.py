"""grad, value_and_grad, vjp, jvp, custom_vjp over ramie objects."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from transform_models import MLP, BatchNorm, Linear

from ramie import core
from ramie.transforms import (
    TransformArgumentError,
    custom_vjp,
    grad,
    jit,
    jvp,
    value_and_grad,
    vjp,
)
from ramie.transforms import _errors as terrors


def _pure_loss(params, x, y):
    h = x @ params["kernel"] + params["bias"]
    return jnp.mean((h - y) ** 2)


def _data():
    return jax.random.normal(jax.random.key(1), (4, 3)), jnp.ones((4, 2))


def test_value_and_grad_matches_jax_on_the_pure_function():
    lin = Linear(3, 2, rngs=core.Rngs(0))
    x, y = _data()
    loss, grads = value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(lin)
    params = core.to_pure_dict(core.state(lin, core.Param))
    want_loss, want = jax.value_and_grad(_pure_loss)(params, x, y)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    assert isinstance(grads, core.State)
    assert type(grads["kernel"]) is core.Param
    np.testing.assert_allclose(grads["kernel"].value, want["kernel"], rtol=1e-5)
    np.testing.assert_allclose(grads["bias"].value, want["bias"], rtol=1e-5)


def test_grad_only_differentiates_params_and_propagates_batch_stats():
    model = MLP(3, 8, 2, rngs=core.Rngs(0))
    x, y = _data()
    mean_before = np.asarray(model.bn.mean.value)
    grads = grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    assert set(core.State(grads).flat_state()) == {
        ("linear1", "kernel"),
        ("linear1", "bias"),
        ("bn", "scale"),
        ("bn", "bias"),
        ("linear2", "kernel"),
        ("linear2", "bias"),
    }
    assert not np.allclose(model.bn.mean.value, mean_before)  # mutation written back
    assert not isinstance(model.bn.mean.value, jax.core.Tracer)


def test_wrt_filters_choose_the_differentiated_state():
    bn = BatchNorm(3)
    x = jax.random.normal(jax.random.key(0), (5, 3))

    def loss(m):
        m.use_running_average = False
        return jnp.sum(m(x) ** 2)

    g = grad(lambda m: jnp.sum(m(x) * m.mean.value), wrt=core.BatchStat)(bn)
    assert set(core.State(g).flat_state()) == {("mean",), ("var",)}
    g = grad(lambda m: jnp.sum(m(x)), wrt=core.PathContains("scale"))(BatchNorm(3))
    assert set(core.State(g).flat_state()) == {("scale",)}


def test_argnums_mixing_objects_and_arrays_and_has_aux():
    lin = Linear(3, 2, rngs=core.Rngs(0))
    x, y = _data()

    def loss(m, x):
        out = m(x)
        return jnp.mean((out - y) ** 2), {"out": out, "model": m}

    (value, aux), (g_model, g_x) = value_and_grad(loss, argnums=(0, 1), has_aux=True)(lin, x)
    params = core.to_pure_dict(core.state(lin, core.Param))
    want_p, want_x = jax.grad(_pure_loss, argnums=(0, 1))(params, x, y)
    np.testing.assert_allclose(g_x, want_x, rtol=1e-5)
    np.testing.assert_allclose(g_model["kernel"].value, want_p["kernel"], rtol=1e-5)
    assert aux["model"] is lin
    assert aux["out"].shape == (4, 2)
    g, aux2 = grad(loss, has_aux=True)(lin, x)
    assert set(core.State(g).flat_state()) == {("kernel",), ("bias",)}


def test_grad_of_pytree_argument_keeps_its_structure():
    g = grad(lambda p: p["a"] ** 2 + 3 * p["b"])({"a": 2.0, "b": 1.0})
    assert g == {"a": 4.0, "b": 3.0}


def test_grad_inside_jit_with_shared_parameters():
    class Tied(core.Module):
        def __init__(self):
            self.w = core.Param(jnp.array(2.0))
            self.alias = self.w  # the same Variable under two names

    model = Tied()

    @jit
    def f(m):
        return grad(lambda m: m.w.value * m.alias.value)(m)

    g = f(model)
    assert set(core.State(g).flat_state()) == {("w",)}
    assert float(g["w"].value) == 4.0  # d(w*w)/dw
    assert model.alias is model.w


def test_argument_errors():
    with pytest.raises(TransformArgumentError) as info:
        grad(lambda m: 0.0, argnums=3)(Linear(1, 1, rngs=core.Rngs(0)))
    assert str(info.value) == terrors.ARGNUMS_RANGE.format(
        transform="value_and_grad", argnums=(3,), count=1, index=3
    )
    with pytest.raises(TransformArgumentError) as info:
        grad(lambda m: m.bias.value.sum(), has_aux=True)(Linear(1, 1, rngs=core.Rngs(0)))
    assert "has_aux=True needs the function to return a pair" in str(info.value)


def test_vjp_and_jvp_agree_with_jax():
    lin = Linear(3, 2, rngs=core.Rngs(0))
    x, _ = _data()
    params = core.to_pure_dict(core.state(lin, core.Param))

    out, back = vjp(lambda m, x: m(x), lin, x)
    ct = jnp.ones_like(out)
    g_m, g_x = back(ct)
    want_out, want_back = jax.vjp(lambda p, x: x @ p["kernel"] + p["bias"], params, x)
    want_p, want_x = want_back(ct)
    np.testing.assert_allclose(out, want_out, rtol=1e-6)
    np.testing.assert_allclose(g_m["kernel"].value, want_p["kernel"], rtol=1e-5)
    np.testing.assert_allclose(g_x, want_x, rtol=1e-5)

    tangent = jax.tree.map(jnp.ones_like, core.state(lin, core.Param))
    out, t_out = jvp(lambda m, x: m(x), (lin, x), (tangent, jnp.zeros_like(x)))
    _, want_t = jax.jvp(
        lambda p: x @ p["kernel"] + p["bias"],
        (params,),
        (jax.tree.map(jnp.ones_like, params),),
    )
    np.testing.assert_allclose(t_out, want_t, rtol=1e-5)
    with pytest.raises(TransformArgumentError, match="2 primals but 1 tangents"):
        jvp(lambda m, x: m(x), (lin, x), (tangent,))
    with pytest.raises(TransformArgumentError, match="no tangent for 'kernel'"):
        jvp(lambda m, x: m(x), (lin, x), (core.State({}), jnp.zeros_like(x)))


def test_custom_vjp_replaces_the_backward_pass():
    lin = Linear(3, 1, rngs=core.Rngs(0))
    x, _ = _data()

    @custom_vjp
    def apply(m, x):
        return m(x)

    def fwd(m, x):
        return apply(m, x), (m.kernel.value, x)

    def bwd(res, g):
        kernel, x = res
        clipped = jnp.clip(x.T @ g, -0.01, 0.01)
        return core.State(
            {"kernel": core.Param(clipped), "bias": core.Param(g.sum(0))}
        ), g @ kernel.T

    apply.defvjp(fwd, bwd)
    g = grad(lambda m: apply(m, x).sum())(lin)
    assert float(jnp.abs(g["kernel"].value).max()) <= 0.01
    np.testing.assert_allclose(g["bias"].value, [4.0])
    np.testing.assert_allclose(apply(lin, x), lin(x), rtol=1e-6)

    undefined = custom_vjp(lambda m: m.bias.value.sum())
    with pytest.raises(TransformArgumentError, match="has no backward pass yet"):
        undefined(lin)


# -- arguments that are States, containers or bare Variables (issue 11) --------------
def _assert_same_tree(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def _split_linear():
    return core.split(Linear(2, 3, rngs=core.Rngs(0)), core.Param)


def test_grad_of_a_state_argument_equals_jax_grad():
    g, p = _split_linear()

    def loss(p):
        return core.merge(g, p)(jnp.ones((1, 2))).sum()

    got = grad(loss)(p)
    assert isinstance(got, core.State)
    assert type(got["kernel"]) is core.Param
    _assert_same_tree(got, jax.grad(loss)(p))
    np.testing.assert_allclose(got["bias"].value, [1.0, 1.0, 1.0])


@pytest.mark.parametrize("container", ["dict", "list", "core.Dict", "core.List", "tuple"])
def test_grad_of_containers_of_variables_equals_jax_grad(container):
    w, b = core.Param(jnp.array([1.0, 2.0])), core.BatchStat(jnp.array(3.0))
    make = {
        "dict": lambda: {"w": w, "b": b},
        "list": lambda: [w, b],
        "core.Dict": lambda: core.Dict(w=w, b=b),
        "core.List": lambda: core.List([w, b]),
        "tuple": lambda: (w, b),
    }[container]
    key_w, key_b = ("w", "b") if "ict" in container else (0, 1)

    def loss(c):
        return jnp.sum(c[key_w].value ** 2) * c[key_b].value

    got = grad(loss)(make())
    want = jax.grad(loss)(make())
    _assert_same_tree(got, want)
    assert type(got[key_w]) is core.Param and type(got[key_b]) is core.BatchStat
    np.testing.assert_allclose(got[key_w].value, [6.0, 12.0])
    np.testing.assert_allclose(got[key_b].value, 5.0)


def test_grad_of_a_bare_variable_equals_jax_grad():
    v = core.Param(jnp.array([1.0, -2.0]))
    got = grad(lambda v: jnp.sum(v.value**3))(v)
    assert type(got) is core.Param
    np.testing.assert_allclose(got.value, [3.0, 12.0])
    _assert_same_tree(got, jax.grad(lambda v: jnp.sum(v.value**3))(v))
    assert got is not v and float(v.value[1]) == -2.0


def _mixed_loss(p, x, scale):
    m = core.merge(_MIXED_G, p)
    out = m(x) * scale["s"].value
    return jnp.sum(out**2), {"out": out}


_MIXED_G, _MIXED_P = _split_linear()


@pytest.mark.parametrize("argnums", [0, 1, 2, (0, 2), (2, 0), (0, 1, 2), -1, (1, -3)])
@pytest.mark.parametrize("has_aux", [False, True])
def test_argnums_and_has_aux_combinations_equal_jax(argnums, has_aux):
    args = (_MIXED_P, jnp.array([[1.0, -1.0]]), {"s": core.Param(jnp.array(2.0))})
    fun = _mixed_loss if has_aux else (lambda *a: _mixed_loss(*a)[0])
    got = grad(fun, argnums=argnums, has_aux=has_aux)(*args)
    want = jax.grad(fun, argnums=argnums, has_aux=has_aux)(*args)
    if has_aux:
        (got, got_aux), (want, want_aux) = got, want
        np.testing.assert_allclose(got_aux["out"], want_aux["out"], rtol=1e-6)
    _assert_same_tree(got, want)
    (value, _), _ = value_and_grad(_mixed_loss, argnums=argnums, has_aux=True)(*args)
    np.testing.assert_allclose(value, _mixed_loss(*args)[0], rtol=1e-6)


def test_grad_of_a_module_and_its_own_state_in_another_argument():
    lin = Linear(2, 2, rngs=core.Rngs(0))
    extra = {"k": lin.kernel}  # the same Variable, also passed directly

    def loss(m, e):
        return jnp.sum(m(jnp.ones((1, 2)))) + jnp.sum(e["k"].value)

    g_m, g_e = grad(loss, argnums=(0, 1))(lin, extra)
    assert set(g_m) == {"kernel", "bias"}
    assert type(g_e["k"]) is core.Param
    # one shared Variable: the gradient of both uses, in both places
    np.testing.assert_allclose(g_e["k"].value, g_m["kernel"].value)
    np.testing.assert_allclose(g_e["k"].value, jnp.full((2, 2), 2.0))


def test_vjp_jvp_and_custom_vjp_with_state_arguments_equal_jax():
    g, p = _split_linear()
    x = jnp.array([[1.0, 2.0]])

    def f(p, x):
        return core.merge(g, p)(x)

    out, back = vjp(f, p, x)
    want_out, want_back = jax.vjp(f, p, x)
    ct = jnp.arange(3.0)[None]
    np.testing.assert_allclose(out, want_out)
    for a, b in zip(back(ct), want_back(ct), strict=True):
        _assert_same_tree(a, b)

    tangent = jax.tree.map(jnp.ones_like, p)
    out, t_out = jvp(f, (p, x), (tangent, jnp.zeros_like(x)))
    want_out, want_t = jax.jvp(f, (p, x), (tangent, jnp.zeros_like(x)))
    np.testing.assert_allclose(out, want_out)
    np.testing.assert_allclose(t_out, want_t, rtol=1e-6)

    v = core.Param(jnp.array(3.0))
    out, t_out = jvp(lambda v: v.value**2, (v,), (core.Param(jnp.array(1.0)),))
    assert float(out) == 9.0 and float(t_out) == 6.0

    @custom_vjp
    def scaled(p, x):
        return f(p, x)

    def fwd(p, x):
        return scaled(p, x), (p, x)

    def bwd(res, ct):
        p, x = res
        return jax.tree.map(lambda v: 10 * jnp.ones_like(v), p), jnp.zeros_like(x)

    scaled.defvjp(fwd, bwd)
    got = grad(lambda p: scaled(p, x).sum())(p)
    assert isinstance(got, core.State)
    np.testing.assert_allclose(got["kernel"].value, jnp.full((2, 3), 10.0))


def test_grad_of_tracked_containers_holding_modules_gives_plain_containers_of_states():
    lin = Linear(2, 2, rngs=core.Rngs(0))
    extra = core.Param(jnp.ones(2))
    x = jnp.ones((1, 2))
    g = grad(lambda d: d["m"](x).sum())(core.Dict(m=lin))
    assert type(g) is dict and isinstance(g["m"], core.State)
    np.testing.assert_allclose(g["m"]["bias"].value, [1.0, 1.0])
    g = grad(lambda xs: xs[0](x).sum() + xs[1].value.sum())(core.List([lin, extra]))
    assert type(g) is list and isinstance(g[0], core.State) and type(g[1]) is core.Param
    np.testing.assert_allclose(g[1].value, [1.0, 1.0])
