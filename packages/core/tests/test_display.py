"""Display: render/repr text trees, display() without a notebook, and summary() tables."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ramie import core


class Count(core.Variable):
    pass


class Linear(core.Module):
    def __init__(self, din, dout, *, rngs):
        self.kernel = core.Param(jax.random.normal(rngs.params(), (din, dout)))
        self.bias = core.Param(jnp.zeros((dout,)))

    def __call__(self, x):
        return x @ self.kernel + self.bias


class MLP(core.Module):
    def __init__(self, din, hidden, dout, *, rngs):
        self.linear1 = Linear(din, hidden, rngs=rngs)
        self.linear2 = Linear(hidden, dout, rngs=rngs)
        self.mean = core.BatchStat(jnp.zeros((hidden,)))
        self.steps = Count(jnp.array(0, jnp.int32))
        self.rate = 0.5

    def __call__(self, x):
        return self.linear2(jax.nn.relu(self.linear1(x)))


@pytest.fixture(autouse=True)
def no_notebook(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)


# -- render / repr -------------------------------------------------------------------------
def test_render_shows_types_names_kinds_and_shapes():
    model = MLP(3, 4, 2, rngs=core.Rngs(0))
    text = core.render(model)
    lines = text.splitlines()
    assert lines[0] == "MLP"
    assert "  linear1: Linear" in lines
    assert "  linear2: Linear" in lines
    assert "    kernel: Param float32[3, 4]" in lines
    assert "    kernel: Param float32[4, 2]" in lines
    assert any(line.startswith("    bias: Param float32[4]") for line in lines)
    assert any(line.startswith("  mean: BatchStat float32[4]") for line in lines)
    assert any(line.startswith("  steps: Count int32[]") for line in lines)
    assert "  rate: 0.5" in lines


def test_repr_of_module_is_the_render():
    model = MLP(3, 4, 2, rngs=core.Rngs(0))
    assert repr(model) == core.render(model)


def test_render_nests_by_indentation():
    model = MLP(3, 4, 2, rngs=core.Rngs(0))
    lines = core.render(model).splitlines()
    i = lines.index("  linear1: Linear")
    assert lines[i + 1].startswith("    kernel: ")
    assert lines[i + 2].startswith("    bias: ")


def test_render_shows_metadata():
    class M(core.Module):
        def __init__(self):
            self.w = core.Param(jnp.zeros((8, 8)), sharding=("data", None))

    assert "w: Param float32[8, 8], sharding=('data', None)" in core.render(M())


def test_shared_submodule_and_variable_show_as_shared():
    class Shared(core.Module):
        def __init__(self):
            inner = Linear(2, 3, rngs=core.Rngs(0))
            self.first = inner
            self.again = inner
            self.layers = [inner, {"k": inner.kernel}]

    text = core.render(Shared())
    lines = text.splitlines()
    assert "  first: Linear" in lines
    assert "  again: <shared: same object as 'first'>" in lines
    assert "    0: <shared: same object as 'first'>" in lines
    assert "      k: <shared: same object as 'first/kernel'>" in lines
    # the shared module's contents are shown once
    assert sum("kernel: Param" in line for line in lines) == 1


def test_render_of_state_and_lists():
    model = MLP(3, 4, 2, rngs=core.Rngs(0))
    text = core.render(core.state(model))
    assert text.splitlines()[0] == "State"
    assert "  linear1: State" in text
    assert "kernel: Param float32[3, 4]" in text
    assert "rate" not in text  # static values are not state

    class WithList(core.Module):
        def __init__(self):
            self.layers = [core.Param(jnp.zeros(2)), core.Param(jnp.ones(3))]

    text = core.render(WithList())
    assert "  layers: List[2]" in text
    assert "    0: Param float32[2]" in text
    assert "    1: Param float32[3]" in text


def test_render_of_rngs_shows_key_and_count():
    text = core.render(core.Rngs(0))
    assert "default: RngStream" in text
    assert "key: RngKey key<fry>[]" in text
    assert "count: RngCount uint32[]" in text


# -- display ---------------------------------------------------------------------------------
def test_display_prints_text_tree(capsys):
    model = MLP(3, 4, 2, rngs=core.Rngs(0))
    assert core.display(model) is None
    out = capsys.readouterr().out
    assert out == core.render(model) + "\n"
    assert "kernel: Param float32[3, 4]" in out


def test_display_prints_several_objects(capsys):
    model = MLP(3, 4, 2, rngs=core.Rngs(0))
    st = core.state(model, core.Param)
    core.display(model, st)
    out = capsys.readouterr().out
    assert out == core.render(model) + "\n" + core.render(st) + "\n"


# -- summary ---------------------------------------------------------------------------------
def test_summary_of_two_layer_model(capsys):
    din, hidden, dout = 30, 40, 10
    model = MLP(din, hidden, dout, rngs=core.Rngs(0))
    table = core.summary(model)
    printed = capsys.readouterr().out
    assert printed.strip() == table.strip()

    lines = table.splitlines()
    header = lines[0].split()
    assert header == ["path", "type", "shape", "dtype", "params", "bytes"]

    shapes = {
        "linear1/kernel": (din, hidden),
        "linear1/bias": (hidden,),
        "linear2/kernel": (hidden, dout),
        "linear2/bias": (dout,),
    }
    n_params = sum(int(np.prod(s)) for s in shapes.values())
    param_bytes = 4 * n_params
    stat_bytes = 4 * hidden
    count_bytes = 4
    total_bytes = param_bytes + stat_bytes + count_bytes
    assert n_params == 30 * 40 + 40 + 40 * 10 + 10

    for path, shape in shapes.items():
        line = next(ln for ln in lines if ln.split()[0] == path)
        size = int(np.prod(shape))
        assert line.split() == [
            path,
            "Param",
            *str(shape).split(),
            "float32",
            f"{size:,}",
            f"{4 * size:,}",
        ]

    mean = next(ln for ln in lines if ln.split()[0] == "mean").split()
    assert mean == ["mean", "BatchStat", f"({hidden},)", "float32", "0", f"{stat_bytes:,}"]
    steps = next(ln for ln in lines if ln.split()[0] == "steps").split()
    assert steps == ["steps", "Count", "()", "int32", "0", "4"]
    assert not any(ln.split()[0] == "rate" for ln in lines)  # static, not state

    # per-module subtotals
    sub1 = next(ln for ln in lines if ln.startswith("linear1/*")).split()
    l1 = din * hidden + hidden
    assert sub1 == ["linear1/*", "(subtotal)", f"{l1:,}", f"{4 * l1:,}"]
    sub2 = next(ln for ln in lines if ln.startswith("linear2/*")).split()
    l2 = hidden * dout + dout
    assert sub2 == ["linear2/*", "(subtotal)", f"{l2:,}", f"{4 * l2:,}"]

    # per-kind totals and the total row
    total_param = next(ln for ln in lines if ln.startswith("total Param")).split()
    assert total_param[-3:] == [f"{n_params:,}", "values", f"{param_bytes:,}"]
    total_stat = next(ln for ln in lines if ln.startswith("total BatchStat")).split()
    assert total_stat[-3:] == [f"{hidden:,}", "values", f"{stat_bytes:,}"]
    total_count = next(ln for ln in lines if ln.startswith("total Count")).split()
    assert total_count[-3:] == ["1", "values", f"{count_bytes:,}"]
    assert lines[-1].split() == ["total", f"{n_params:,}", f"{total_bytes:,}"]
    assert "1,650" in lines[-1]


def test_summary_counts_shared_variables_once(capsys):
    class Tied(core.Module):
        def __init__(self):
            self.embed = core.Param(jnp.zeros((10, 4)))
            self.unembed = self.embed

    table = core.summary(Tied())
    capsys.readouterr()
    assert table.splitlines()[-1].split() == ["total", "40", "160"]


def test_summary_handles_other_dtypes_and_rng_keys(capsys):
    class M(core.Module):
        def __init__(self):
            self.rngs = core.Rngs(0)
            self.half = core.Param(jnp.ones((2, 3), jnp.bfloat16))
            self.small = core.Param(jnp.ones((5,), jnp.int8))

    table = core.summary(M())
    capsys.readouterr()
    lines = table.splitlines()
    rng_bytes = 8 + 4  # a threefry key (2 x uint32) and a uint32 counter
    assert lines[-1].split() == ["total", "11", f"{6 * 2 + 5 + rng_bytes}"]
    key = next(ln for ln in lines if ln.startswith("rngs/default/key")).split()
    assert key[1] == "RngKey"
    assert key[-2] == "0"
