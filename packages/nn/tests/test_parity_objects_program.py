"""An NNX 0.12 program using its object model, run by ramie with only its import changed.

``PROGRAM`` (our own words) uses what issue 14 adds to the object model:
``nnx.dataclass`` / ``nnx.Pytree`` with ``nnx.data()`` / ``nnx.static()`` fields,
``nnx.static(value)``, Rngs samplers (``rngs.normal``,
``rngs.params.uniform``), Variable comparisons and ``v[...] =`` assignment,
``get_value`` / ``set_metadata``, and Modules as JAX pytrees: a training loop
with plain ``jax.jit`` / ``jax.value_and_grad`` and optax on the Module itself.
When Flax is installed the original runs too and the numbers must agree.
"""

import numpy as np
import pytest

IMPORT_LINE = "from flax import nnx"

PROGRAM = """
from flax import nnx
import jax
import jax.numpy as jnp
import optax


@nnx.dataclass
class Scaler(nnx.Pytree):
    factor: float = nnx.data()
    label: str = nnx.static(default="scale")


class MLP(nnx.Module):
    def __init__(self, *, rngs):
        self.l1 = nnx.Linear(3, 16, rngs=rngs)
        self.l2 = nnx.Linear(16, 1, rngs=rngs)
        self.l2.bias.set_value(rngs.params.uniform((1,), minval=-0.1, maxval=0.1))
        self.scaler = Scaler(1.0)
        self.widths = nnx.static((3, 16, 1))

    def __call__(self, x):
        return self.l2(nnx.relu(self.l1(x))) * self.scaler.factor


rngs = nnx.Rngs(0, params=1)
model = MLP(rngs=rngs)
x = rngs.normal((64, 3))
y = jnp.sin(x).sum(axis=1, keepdims=True)
tx = optax.adam(0.02)
opt_state = tx.init(model)
leaf_count = len(jax.tree.leaves(model))
first_kernel = model.l1.kernel.get_value()


@jax.jit
def train_step(model, opt_state, x, y):
    def loss_fn(model):
        return ((model(x) - y) ** 2).mean()

    loss, grads = jax.value_and_grad(loss_fn)(model)
    updates, opt_state = tx.update(grads, opt_state, model)
    return optax.apply_updates(model, updates), opt_state, loss


losses = []
for step in range(40):
    new_model, opt_state, loss = train_step(model, opt_state, x, y)
    if step == 0:
        untouched = bool((model.l1.kernel.get_value() == first_kernel).all())
    model = new_model
    losses.append(float(loss))
model.l1.kernel.set_metadata(note="trained")

counter = nnx.Variable(jnp.array(0))
branches = []
for _ in range(3):
    branches.append("first" if counter == 0 else "later")
    counter[...] = counter[...] + 1
cache = nnx.Cache(jnp.zeros(4))
cache[...] = jnp.arange(4)
cache[...] = 5
"""


def run(import_line: str) -> dict:
    assert PROGRAM.count(IMPORT_LINE) == 1
    namespace: dict = {}
    exec(compile(PROGRAM.replace(IMPORT_LINE, import_line), "<nnx program>", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def ours():
    return run("from ramie import nn as nnx")


def test_the_program_trains_with_plain_jax_and_optax_on_the_module(ours):
    losses = ours["losses"]
    assert losses[-1] < 0.3 * losses[0]
    assert ours["leaf_count"] == 5  # two kernels, two biases, the scaler's factor
    assert ours["untouched"]  # jax.jit gave back a new model; the old one kept its values
    assert ours["model"].widths == (3, 16, 1) and ours["model"].scaler.label == "scale"
    assert ours["model"].l1.kernel.get_metadata("note") == "trained"


def test_variable_comparisons_and_item_assignment(ours):
    assert ours["branches"] == ["first", "later", "later"]
    assert ours["cache"][...].dtype == np.float32 and ours["cache"][...].tolist() == [5.0] * 4


def test_same_numbers_as_flax_nnx(ours):
    pytest.importorskip("flax.nnx")
    theirs = run(IMPORT_LINE)
    np.testing.assert_allclose(ours["losses"], theirs["losses"], rtol=1e-5)
    assert ours["leaf_count"] == theirs["leaf_count"]
    assert ours["branches"] == theirs["branches"]
    np.testing.assert_array_equal(ours["cache"][...], theirs["cache"][...])
    np.testing.assert_array_equal(ours["x"], theirs["x"])
