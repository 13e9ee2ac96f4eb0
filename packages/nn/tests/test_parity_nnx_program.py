"""A Flax NNX program, run by ramie with only its import line changed (issue 15).

``PROGRAM`` is written, in our own words, the way NNX programs are: a CNN with
BatchNorm and Dropout, trained by ``nnx.ModelAndOptimizer`` inside ``nnx.jit``
with ``nnx.value_and_grad(..., has_aux=True)``, tracked by ``nnx.MultiMetric``
with a mask that hides the padding of the last, short batch, and evaluated in
``model.eval()`` mode. ``nnx.tabulate`` describes the model. The test replaces
the line ``from flax import nnx`` with ``from ramie import nn as nnx`` and
nothing else; when Flax is installed, the original runs too and the two
training curves must agree.
"""

import numpy as np
import pytest

IMPORT_LINE = "from flax import nnx"

PROGRAM = '''
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax


class CNN(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 8, kernel_size=(3, 3), rngs=rngs)
        self.bn1 = nnx.BatchNorm(8, rngs=rngs)
        self.conv2 = nnx.Conv(8, 16, kernel_size=(3, 3), rngs=rngs)
        self.bn2 = nnx.BatchNorm(16, rngs=rngs)
        self.dropout = nnx.Dropout(0.2, rngs=rngs)
        self.linear1 = nnx.Linear(16 * 2 * 2, 32, rngs=rngs)
        self.linear2 = nnx.Linear(32, 4, rngs=rngs)

    def __call__(self, x):
        x = nnx.avg_pool(nnx.relu(self.bn1(self.conv1(x))), window_shape=(2, 2), strides=(2, 2))
        x = nnx.avg_pool(nnx.relu(self.bn2(self.conv2(x))), window_shape=(2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        x = self.dropout(nnx.relu(self.linear1(x)))
        return self.linear2(x)


def make_data(n, seed):
    """8x8 images whose label is the quadrant holding a bright square."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    images = rng.normal(0.0, 0.3, size=(n, 8, 8, 1)).astype(np.float32)
    for i, label in enumerate(labels):
        r, c = divmod(int(label), 2)
        images[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4, 0] += 1.0
    return images, labels.astype(np.int32)


def batches(images, labels, size):
    """Fixed-size batches; the last is padded, and its mask hides the padding."""
    for start in range(0, len(images), size):
        x, y = images[start : start + size], labels[start : start + size]
        pad = size - len(x)
        mask = np.arange(size) < len(x)
        yield np.pad(x, ((0, pad), (0, 0), (0, 0), (0, 0))), np.pad(y, (0, pad)), mask


def loss_fn(model, images, labels, mask):
    logits = model(images)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return (losses * mask).sum() / mask.sum(), logits


@nnx.jit
def train_step(model, optimizer, metrics, images, labels, mask):
    grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)
    (loss, logits), grads = grad_fn(model, images, labels, mask)
    metrics.update(loss=loss, logits=logits, labels=labels, mask=mask)
    optimizer.update(grads)


@nnx.jit
def eval_step(model, metrics, images, labels, mask):
    loss, logits = loss_fn(model, images, labels, mask)
    metrics.update(loss=loss, logits=logits, labels=labels, mask=mask)


model = CNN(rngs=nnx.Rngs(0))
optimizer = nnx.ModelAndOptimizer(model, optax.adamw(0.01, 0.9))
metrics = nnx.MultiMetric(accuracy=nnx.metrics.Accuracy(), loss=nnx.metrics.Average("loss"))
table = nnx.tabulate(model, jnp.ones((1, 8, 8, 1)))

train_images, train_labels = make_data(150, seed=1)
test_images, test_labels = make_data(70, seed=2)
history = {"train_loss": [], "train_accuracy": [], "test_loss": [], "test_accuracy": []}
for epoch in range(4):
    model.train()
    for batch in batches(train_images, train_labels, 32):
        train_step(model, optimizer, metrics, *batch)
    for name, value in metrics.compute().items():
        history[f"train_{name}"].append(float(value))
    metrics.reset()
    model.eval()
    for batch in batches(test_images, test_labels, 32):
        eval_step(model, metrics, *batch)
    for name, value in metrics.compute().items():
        history[f"test_{name}"].append(float(value))
    metrics.reset()
'''


def run(import_line: str) -> dict:
    assert PROGRAM.count(IMPORT_LINE) == 1
    namespace: dict = {}
    exec(compile(PROGRAM.replace(IMPORT_LINE, import_line), "<nnx program>", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def ours():
    return run("from ramie import nn as nnx")


def test_the_nnx_program_trains_under_ramie(ours):
    history = ours["history"]
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert history["test_accuracy"][-1] >= 0.9
    assert int(ours["optimizer"].step.value) == 4 * 5  # 150 examples in batches of 32
    assert ours["optimizer"].model is ours["model"]
    assert ours["model"].bn1.use_running_average  # left in eval mode


def test_masked_metrics_count_only_real_examples(ours):
    metrics, model = ours["metrics"], ours["model"]
    for batch in ours["batches"](ours["test_images"], ours["test_labels"], 32):
        ours["eval_step"](model, metrics, *batch)
    assert int(metrics.accuracy.count.value) == 70  # not 96: the padding is masked out
    assert int(metrics.loss.count.value) == 70


def test_tabulate_describes_the_model(ours):
    lines = ours["table"].splitlines()
    assert lines[0].split()[:4] == ["path", "type", "inputs", "outputs"]
    conv1 = next(line.split() for line in lines if line.startswith("conv1 "))
    assert conv1[:4] == ["conv1", "Conv", "float32[1,8,8,1]", "float32[1,8,8,8]"]
    assert conv1[4] == "80"  # 3*3*1*8 + 8 parameters


def test_same_curves_as_flax_nnx(ours, monkeypatch):
    """Identical numbers, once Flax's BatchNorm uses ramie's (stable) variance default.

    With Flax's own default (E[x^2] - E[x]^2) the evaluation losses differ by
    about 2%: the running variances it accumulates lose digits.
    """
    nnx = pytest.importorskip("flax.nnx")
    flax_init = nnx.BatchNorm.__init__

    def stable_init(self, *args, **kwargs):
        kwargs.setdefault("use_fast_variance", False)
        flax_init(self, *args, **kwargs)

    monkeypatch.setattr(nnx.BatchNorm, "__init__", stable_init)
    theirs = run(IMPORT_LINE)
    for key, values in ours["history"].items():
        np.testing.assert_allclose(values, theirs["history"][key], rtol=1e-6, err_msg=key)
