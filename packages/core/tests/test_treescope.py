"""display() with treescope (installed by the test extra, optional for users)."""

import jax.numpy as jnp
import treescope

from ramie import core
from ramie.core import _display


class Inner(core.Module):
    def __init__(self):
        self.stat = core.BatchStat(jnp.zeros(2))


class Outer(core.Module):
    def __init__(self):
        self.w = core.Param(jnp.ones((2, 3)), tag="kernel")
        self.inner = Inner()
        self.alias = self.inner
        self.n = 3


def test_treescope_renders_modules_and_variables_as_constructors():
    text = treescope.render_to_text(Outer())
    assert text.startswith("Outer(")
    assert "w=Param(" in text and "tag='kernel'" in text
    assert "inner=Inner(" in text and "stat=BatchStat(" in text
    assert "n=3" in text
    assert "Repeated python obj" in text  # the shared submodule is marked


def test_treescope_handles_cycles():
    m = Outer()
    m.me = m
    assert "cyclic reference to Outer" in treescope.render_to_text(m)


def test_display_uses_treescope_in_a_notebook(monkeypatch):
    shown = []
    monkeypatch.setattr(_display, "_in_notebook", lambda: True)
    monkeypatch.setattr(treescope, "display", shown.append)
    model, state = Outer(), core.state(Outer())
    core.display(model, state)
    assert shown == [model, state]
