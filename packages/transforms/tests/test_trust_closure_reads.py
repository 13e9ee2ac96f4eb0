"""nn.jit warns once when it bakes a captured Variable's value in (issue 11)."""

import warnings

import jax.numpy as jnp
import pytest

from ramie import core
from ramie import transforms as tx


class Model(core.Module):
    def __init__(self):
        self.layers = [core.Module()]
        self.layers[0].kernel = core.Param(jnp.ones(2))


def test_reading_a_captured_model_warns_once_naming_the_path_and_the_fix():
    model = Model()

    @tx.jit
    def predict(x):
        return x * model.layers[0].kernel.value

    with pytest.warns(core.ClosureReadWarning) as record:
        assert float(predict(jnp.ones(2)).sum()) == 2.0
    (w,) = record
    assert str(w.message) == core._errors.CLOSURE_READ.format(
        transform="jit",
        fn=predict.__qualname__,
        kind="Param",
        found="float32[2]",
        where=" ('layers/0/kernel' of the captured `model`)",
    )
    assert "frozen into the compiled function" in str(w.message)
    assert "ClosureReadWarning" in str(w.message)
    # the frozen value is what the warning says: a later change is not seen
    model.layers[0].kernel.value = jnp.full(2, 5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per function: no second warning
        assert float(predict(jnp.ones(2)).sum()) == 2.0
        assert float(predict(jnp.ones(3)[:2] * 2).sum()) == 4.0  # a retrace, still silent


def test_a_captured_bare_variable_is_named():
    scale = core.Param(jnp.array(3.0))
    f = tx.jit(lambda x: x * scale)
    with pytest.warns(core.ClosureReadWarning, match=r"\(the captured `scale`\)"):
        f(jnp.ones(()))


def test_arguments_and_objects_made_inside_do_not_warn():
    model = Model()

    @tx.jit
    def step(m, x):
        extra = core.Param(jnp.ones(2))
        g, s = core.split(m)
        copy = core.merge(g, s)
        return x * m.layers[0].kernel.value * extra.value * copy.layers[0].kernel.value

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(step(model, jnp.ones(2)).sum()) == 2.0


def test_eager_transforms_and_plain_code_do_not_warn():
    model = Model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tx.grad(lambda m: (m.layers[0].kernel.value * model.layers[0].kernel.value).sum())(Model())
        assert float(model.layers[0].kernel.value.sum()) == 2.0


def test_the_warning_can_be_silenced():
    model = Model()
    f = tx.jit(lambda x: x * model.layers[0].kernel.value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=core.ClosureReadWarning)
        f(jnp.ones(2))
