"""A character-level Transformer language model on Python's own standard-library source.

Decoder-only: token and position embeddings, pre-LayerNorm blocks of causal
``MultiHeadAttention`` and an MLP with dropout, and an output layer tied to the
token embedding (``Embed.attend``). The blocks are built once by ``nn.vmap``
over the block constructor (their parameters stacked on a leading axis) and
applied by ``nn.scan``; ``--no-scan-layers`` builds a list and loops in Python
instead (the same numbers, a longer compile). Sampling runs one character at a
time through the attention's key/value cache (``decode=True``)::

    python -m ramie.examples.lm                        # about 75 s on 2 CPU cores
    python -m ramie.examples.lm --temperature 0.5 --top-k 5 --sample-length 400
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ramie import nn
from ramie.examples import common
from ramie.serialization import CheckpointManager

MODULES = ("textwrap", "string", "shlex", "fnmatch", "glob", "bisect", "heapq", "queue")
PROMPT = "def "
SAMPLE_TOO_LONG = (
    "--sample-length {length}: the prompt and the sample must fit in --context {context} "
    "characters (the positions the model has learnt); lower one or raise the other"
)
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))  # printable ASCII; anything else is "?"


def corpus(modules=MODULES) -> str:
    """The source code of a few standard-library modules: every Python installation has it."""
    text = "".join(Path(importlib.import_module(m).__file__).read_text("utf-8") for m in modules)
    return "".join(c if c in VOCAB else "?" for c in text)


def encode(text: str) -> np.ndarray:
    return np.array([VOCAB.index(c) for c in text], np.int32)


def decode(tokens) -> str:
    return "".join(VOCAB[int(t)] for t in tokens)


class Block(nn.Module):
    """Pre-LayerNorm: ``x + attention(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, features: int, heads: int, dropout: float, *, rngs: nn.Rngs):
        self.norm1 = nn.LayerNorm(features, rngs=rngs)
        self.attention = nn.MultiHeadAttention(heads, features, rngs=rngs)
        self.norm2 = nn.LayerNorm(features, rngs=rngs)
        self.up = nn.Linear(features, 4 * features, rngs=rngs)
        self.down = nn.Linear(4 * features, features, rngs=rngs)
        self.dropout = nn.Dropout(dropout, rngs=rngs)

    def __call__(self, x, mask, decode: bool):
        x = x + self.dropout(self.attention(self.norm1(x), mask=mask, decode=decode))
        return x + self.dropout(self.down(nn.gelu(self.up(self.norm2(x)))))


class Transformer(nn.Module):
    def __init__(self, args, *, rngs: nn.Rngs):
        self.scan_layers = args.scan_layers
        self.embed = nn.Embed(len(VOCAB), args.features, rngs=rngs)
        self.position = nn.Embed(args.context, args.features, rngs=rngs)
        keys = jax.random.split(rngs.params(), args.layers)  # one key per block

        def block(key):
            return Block(args.features, args.heads, args.dropout, rngs=nn.Rngs(key))

        if self.scan_layers:  # one Block whose arrays have a leading axis of length layers
            self.blocks = nn.vmap(block, in_axes=0, out_axes=0)(keys)
        else:
            self.blocks = nn.List([block(key) for key in keys])
        self.norm = nn.LayerNorm(args.features, rngs=rngs)

    def __call__(self, tokens, positions, *, decode: bool = False):
        """Logits for the next token after each of ``tokens`` (batch, time).

        With ``decode=True``, ``tokens`` is one step (batch, 1) and attention reads
        the earlier steps from the cache (see ``init_cache``).
        """
        x = self.embed(tokens) + self.position(positions)
        mask = None if decode else nn.make_causal_mask(tokens)
        if self.scan_layers:

            @nn.scan(in_axes=(0, nn.Carry), out_axes=nn.Carry)
            def apply(block, x):
                return block(x, mask, decode)

            x = apply(self.blocks, x)
        else:
            for block in self.blocks:
                x = block(x, mask, decode)
        return self.embed.attend(self.norm(x))  # the output layer is the embedding, tied

    def init_cache(self, batch_size: int, length: int) -> None:
        """Give every attention layer an empty key/value cache for ``length`` steps."""
        shape = (batch_size, length, self.embed.features)
        if self.scan_layers:  # one cache, then stacked: one slice per layer
            attention = self.blocks.attention
            attention.init_cache(shape)
            layers = attention.query.kernel.value.shape[0]
            for cache in (attention.cached_key, attention.cached_value, attention.cache_index):
                cache.value = jnp.broadcast_to(cache.value, (layers, *cache.value.shape))
        else:
            for block in self.blocks:
                block.attention.init_cache(shape)


def loss_fn(model, tokens):
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    logits = model(inputs, jnp.arange(inputs.shape[1]))
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()


@nn.jit
def train_step(model, optimizer, metrics, tokens):
    loss, grads = nn.value_and_grad(loss_fn)(model, tokens)
    optimizer.update(grads)
    metrics.update(loss=loss)


@nn.jit
def eval_step(model, metrics, tokens):
    metrics.update(loss=loss_fn(model, tokens))


@nn.jit
def decode_step(model, token, position):
    """The logits after one more token (batch,), read through the cache."""
    return model(token[:, None], position[None], decode=True)[:, 0]


def sample(model, prompt: str, length: int, key, temperature=1.0, top_k=None) -> str:
    """Continue ``prompt`` by ``length`` characters, one cached step at a time."""
    model.eval()
    model.init_cache(1, len(prompt) + length)
    tokens = list(encode(prompt))
    for position in range(len(prompt) + length - 1):
        logits = decode_step(model, jnp.array(tokens[position : position + 1]), jnp.array(position))
        if position + 1 < len(prompt):
            continue  # still reading the prompt into the cache
        logits = logits[0] / temperature
        if top_k:
            logits = jnp.where(logits < jnp.sort(logits)[-top_k], -jnp.inf, logits)
        key, draw = jax.random.split(key)
        tokens.append(int(jax.random.categorical(draw, logits)))
    model.train()
    return decode(tokens)


def windows(data, batch_size, context, rng):
    """``batch_size`` random windows of ``context + 1`` characters."""
    starts = rng.integers(0, len(data) - context - 1, batch_size)
    return data[starts[:, None] + np.arange(context + 1)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        "python -m ramie.examples.lm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context", type=int, default=64, help="characters seen at once")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--scan-layers", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--sample-length", type=int, default=60)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=10, help="sample among the k likeliest")
    parser.add_argument("--seed", type=int, default=0, help="initialisation, batches, sample")
    parser.add_argument("--workdir", help="save a checkpoint there after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --workdir's latest")
    parser.add_argument("--plot", metavar="PATH", help="write the training curves to a PNG")
    args = parser.parse_args(argv)
    if args.resume and not args.workdir:
        parser.error("--resume needs --workdir")
    if len(PROMPT) + args.sample_length > args.context:
        parser.error(SAMPLE_TOO_LONG.format(length=args.sample_length, context=args.context))
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    start_time = time.perf_counter()
    data = encode(corpus())
    split = int(0.9 * len(data))
    train, valid = data[:split], data[split:]
    n_valid = len(valid) // (args.context + 1)
    valid = valid[: n_valid * (args.context + 1)].reshape(n_valid, args.context + 1)

    model = Transformer(args, rngs=nn.Rngs(args.seed))
    steps = args.epochs * args.steps_per_epoch
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.learning_rate, steps // 10, steps)
    optimizer = nn.Optimizer(model, optax.adamw(schedule, weight_decay=0.01))
    metrics = nn.metrics.MultiMetric(loss=nn.metrics.Average("loss"))

    checkpointed = optimizer  # the model's dropout RNG counters are in it too
    history, done = [], 0
    manager = CheckpointManager(args.workdir, max_to_keep=2) if args.workdir else None
    if args.resume and manager.latest_step() is not None:
        done = manager.latest_step()
        nn.update(checkpointed, manager.restore(target=nn.state(checkpointed)))
        history = manager.metadata()["history"]
        print(f"resumed from {args.workdir} after epoch {done}")

    for epoch in range(done + 1, args.epochs + 1):
        rng = np.random.default_rng([args.seed, epoch])  # the windows, resumable
        bar = common.progress(range(args.steps_per_epoch), epoch, args.epochs)
        for step in bar:
            train_step(
                model, optimizer, metrics, windows(train, args.batch_size, args.context, rng)
            )
            if step % 10 == 0:
                bar.set_postfix(loss=f"{float(metrics.loss.compute()):.4f}", refresh=False)
        row = {"train_loss": float(metrics.loss.compute())}
        metrics.reset()
        model.eval()  # no dropout
        for i in range(0, len(valid), 256):
            eval_step(model, metrics, valid[i : i + 256])
        model.train()
        row["valid_bpc"] = float(metrics.loss.compute()) / np.log(2)  # nats -> bits
        metrics.reset()
        history.append(row)
        common.log_epoch(epoch, row)
        if manager:
            manager.save(epoch, nn.state(checkpointed), metadata={"history": history})

    if args.plot:
        common.plot(history, args.plot, "character-level transformer")
    text = sample(
        model, PROMPT, args.sample_length, jax.random.key(args.seed), args.temperature, args.top_k
    )
    print(f"sample (temperature {args.temperature}, top-{args.top_k}):\n{text}")
    print(f"{len(history)} epochs, {time.perf_counter() - start_time:.1f} s in this run")
    bpc = history[-1]["valid_bpc"]
    print(f"validation bits per character: {bpc:.3f}")
    return {"valid_bpc": bpc, "sample": text}


if __name__ == "__main__":
    main()
