"""Display parity with Flax NNX (issue 15): summary's kind totals, noise-free display, tabulate."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core


class LoRAParam(core.Param):  # as ramie.layers defines it: a Param subclass
    pass


class Dense(core.Module):
    def __init__(self, n, m):
        self.w = core.Param(jnp.zeros((n, m)))
        self.param_dtype = jnp.float32  # a class: noise in a display
        self.dtype_obj = np.dtype("float32")
        self.features = m

    def __call__(self, x):
        return x @ self.w


class Adapted(core.Module):
    def __init__(self):
        self.base = Dense(3, 4)
        self.a = LoRAParam(jnp.zeros((3, 2)))
        self.b = LoRAParam(jnp.zeros((2, 4)))
        self.mean = core.BatchStat(jnp.zeros((4,)))

    def __call__(self, x):
        self.mean.value = self.mean.value + 1.0
        return self.base(x) + x @ self.a @ self.b


@pytest.fixture(autouse=True)
def no_notebook(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)


def test_summary_param_total_counts_its_subclasses(capsys):
    table = core.summary(Adapted())
    lines = table.splitlines()
    param = next(ln for ln in lines if ln.startswith("total Param"))
    assert param.startswith("total Param (incl. LoRAParam)")
    assert param.split()[-3:] == ["26", "values", "104"]  # 12 + 6 + 8
    lora = next(ln for ln in lines if ln.startswith("total LoRAParam"))
    assert lora.split()[-3:] == ["14", "values", "56"]
    assert lines[-1].split() == ["total", "26", "120"]  # 26 params; bytes include the 4 stats


def test_display_hides_class_and_dtype_attributes(capsys):
    text = core.render(Adapted())
    assert "param_dtype" not in text and "dtype_obj" not in text
    assert "    features: 4" in text.splitlines()
    core.display(Dense(1, 2))
    shown = capsys.readouterr().out.splitlines()
    assert shown == ["Dense", "  w: Param float32[1, 2] [[0.0, 0.0]]", "  features: 2"]


def test_tabulate_rows_kinds_and_call_shapes(capsys):
    model = Adapted()
    before = float(model.mean.value[0])
    table = core.tabulate(model, jnp.ones((5, 3)))
    rows = [line.split() for line in table.splitlines()]
    assert rows[0] == ["path", "type", "inputs", "outputs", "Param", "LoRAParam", "BatchStat"]
    assert rows[1] == ["-", "Adapted", "float32[5,3]", "float32[5,4]", "12", "(48", "B)",
                       "14", "(56", "B)", "4", "(16", "B)"]  # fmt: skip
    assert rows[2] == ["base", "Dense", "float32[5,3]", "float32[5,4]", "12", "(48", "B)"]
    assert float(model.mean.value[0]) == before  # traced abstractly: nothing changed
    assert Dense.__call__.__name__ == "__call__"  # the class is restored
    assert capsys.readouterr().out.rstrip("\n") == table


def test_tabulate_depth_and_without_inputs():
    table = core.tabulate(Adapted(), depth=0)
    assert [line.split()[:2] for line in table.splitlines()] == [["path", "type"], ["-", "Adapted"]]


def test_tabulate_under_jit_shapes_only():
    model = Dense(2, 3)
    table = core.tabulate(model, jax.ShapeDtypeStruct((7, 2), jnp.bfloat16))
    assert table.splitlines()[1].split()[:4] == ["-", "Dense", "bfloat16[7,2]", "float32[7,3]"]
