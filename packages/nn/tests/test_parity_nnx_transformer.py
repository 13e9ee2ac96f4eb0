"""A Flax NNX transformer training step, run by ramie with only its import line changed (issue 14).

``PROGRAM`` is written, in our own words, the way an NNX user writes a deep
transformer: the blocks are built once by ``nnx.vmap`` over the block
constructor with ``nnx.split_rngs`` (one set of weights and one dropout key
per layer, stacked), applied by ``nnx.scan`` over the stack, and trained by
``nnx.Optimizer`` inside ``nnx.jit`` with ``nnx.value_and_grad``. The same
program defines the plain version, a Python loop over an ``nnx.List`` of
blocks; the tests load the stacked weights (and dropout keys) into it and
check that both train to the same numbers. When Flax is installed, the
original program runs too and gives the same losses.
"""

import jax
import numpy as np
import pytest

IMPORT_LINE = "from flax import nnx"

PROGRAM = '''
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

VOCAB, DIM, HEADS, DEPTH, LENGTH = 12, 16, 2, 3, 8


class Block(nnx.Module):
    def __init__(self, dim, heads, *, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(
            num_heads=heads, in_features=dim, decode=False, rngs=rngs
        )
        self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
        self.up = nnx.Linear(dim, 4 * dim, rngs=rngs)
        self.down = nnx.Linear(4 * dim, dim, rngs=rngs)
        self.dropout = nnx.Dropout(0.1, rngs=rngs)

    def __call__(self, x, mask):
        x = x + self.dropout(self.attention(self.norm1(x), mask=mask))
        return x + self.dropout(self.down(nnx.gelu(self.up(self.norm2(x)))))


class Transformer(nnx.Module):
    """DEPTH blocks stacked by vmap and applied by scan."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(VOCAB, DIM, rngs=rngs)

        @nnx.split_rngs(splits=DEPTH)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def create_blocks(rngs: nnx.Rngs):
            return Block(DIM, HEADS, rngs=rngs)

        self.blocks = create_blocks(rngs)
        self.norm = nnx.LayerNorm(DIM, rngs=rngs)

    def __call__(self, tokens):
        x = self.embed(tokens)
        mask = nnx.make_causal_mask(tokens)

        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def through(x, block):
            return block(x, mask)

        return self.embed.attend(self.norm(through(x, self.blocks)))


class LoopTransformer(nnx.Module):
    """The same network, its blocks in a list applied one after the other."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(VOCAB, DIM, rngs=rngs)
        self.blocks = nnx.List([Block(DIM, HEADS, rngs=rngs) for _ in range(DEPTH)])
        self.norm = nnx.LayerNorm(DIM, rngs=rngs)

    def __call__(self, tokens):
        x = self.embed(tokens)
        mask = nnx.make_causal_mask(tokens)
        for block in self.blocks:
            x = block(x, mask)
        return self.embed.attend(self.norm(x))


def batch(step, size=8):
    """Counting sequences modulo VOCAB from random starts: the next token is learnable."""
    starts = np.random.default_rng(step).integers(0, VOCAB, size=(size, 1))
    return jnp.asarray((starts + np.arange(LENGTH + 1)) % VOCAB, dtype=jnp.int32)


def loss_fn(model, tokens):
    logits = model(tokens[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()


@nnx.jit
def train_step(model, optimizer, tokens):
    loss, grads = nnx.value_and_grad(loss_fn)(model, tokens)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def eval_step(model, tokens):
    return loss_fn(model, tokens)


def train(model, steps):
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
    losses = [float(train_step(model, optimizer, batch(step))) for step in range(steps)]
    return optimizer, losses


model = Transformer(rngs=nnx.Rngs(0))
'''

STEPS = 30


def run(import_line: str) -> dict:
    assert PROGRAM.count(IMPORT_LINE) == 1
    namespace: dict = {}
    exec(compile(PROGRAM.replace(IMPORT_LINE, import_line), "<nnx program>", "exec"), namespace)
    return namespace


def _loop_copy(ns: dict):
    """A LoopTransformer holding the stacked model's weights and dropout keys, layer by layer."""
    nnx = ns["nnx"]
    model = ns["model"]
    loop = ns["LoopTransformer"](rngs=nnx.Rngs(1))  # different weights, overwritten below
    nnx.update(loop.embed, nnx.state(model.embed))
    nnx.update(loop.norm, nnx.state(model.norm))
    stacked = nnx.state(model.blocks)
    for i, block in enumerate(loop.blocks):
        nnx.update(block, jax.tree.map(lambda a, i=i: a[i], stacked))
    return loop


def _evaluate(ns: dict, model) -> float:
    """The loss on a held-out batch, in eval mode (dropout off, no RNG drawn)."""
    model.eval()
    try:
        return float(ns["eval_step"](model, ns["batch"](1000)))
    finally:
        model.train()


@pytest.fixture(scope="module")
def ours():
    ns = run("from ramie import nn as nnx")
    ns["loop"] = _loop_copy(ns)  # before training changes the stacked model
    ns["before"] = _evaluate(ns, ns["model"])
    ns["optimizer"], ns["losses"] = ns["train"](ns["model"], STEPS)
    ns["loop_optimizer"], ns["loop_losses"] = ns["train"](ns["loop"], STEPS)
    return ns


def test_vmap_with_split_rngs_stacks_one_block_per_layer(ours):
    blocks, dim = ours["model"].blocks, ours["DIM"]
    assert blocks.up.kernel.value.shape == (3, dim, 4 * dim)
    assert blocks.attention.query.kernel.value.shape == (3, dim, 2, dim // 2)
    assert blocks.norm1.scale.value.shape == (3, dim)
    kernels = np.asarray(blocks.up.kernel.value)
    assert not np.allclose(kernels[0], kernels[1])  # split_rngs: each layer its own weights
    keys = blocks.dropout.rngs.key.value
    assert keys.shape == (3,) and len({tuple(jax.random.key_data(k).tolist()) for k in keys}) == 3


def test_the_scanned_transformer_trains(ours):
    losses = ours["losses"]
    assert len(losses) == STEPS and all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]
    assert _evaluate(ours, ours["model"]) < 0.5 * ours["before"]
    assert int(ours["optimizer"].step.value) == STEPS


def test_logits_have_the_vocabulary_axis(ours):
    tokens, model = ours["batch"](7)[:, :-1], ours["model"]
    model.eval()
    logits = model(tokens)
    model.train()
    assert logits.shape == (8, ours["LENGTH"], ours["VOCAB"])


def test_dropout_counters_advanced_per_layer_inside_scan(ours):
    counts = ours["model"].blocks.dropout.rngs.count.value
    loop_counts = [int(b.dropout.rngs.count.value) for b in ours["loop"].blocks]
    assert counts.shape == (3,) and counts.tolist() == loop_counts
    assert loop_counts == [2 * STEPS] * 3  # two dropouts per block and training step


def test_scan_over_vmapped_layers_equals_the_loop_over_layers(ours):
    np.testing.assert_allclose(ours["losses"], ours["loop_losses"], rtol=2e-5, atol=1e-6)
    stacked = ours["model"].blocks.up.kernel.value
    for i, block in enumerate(ours["loop"].blocks):
        np.testing.assert_allclose(stacked[i], block.up.kernel.value, rtol=1e-4, atol=1e-6)


def test_same_losses_as_flax_nnx(ours):
    """Flax NNX runs the original program; ramie gives the same initial weights
    and dropout keys (same RNG streams through split_rngs and vmap), so the first
    training steps give the same losses."""
    pytest.importorskip("flax.nnx")
    theirs = run(IMPORT_LINE)
    _, losses = theirs["train"](theirs["model"], 8)
    np.testing.assert_allclose(ours["losses"][:8], losses, rtol=2e-6)
