"""An LSTM encoder-decoder that learns to add: ``"123+45"`` -> ``"168"``, character by character.

The encoder (``nn.RNN`` over an ``LSTMCell``, reading the question backwards)
sums the question up in its final carry; the decoder, another LSTM started
from that carry, writes the answer. Training uses teacher forcing (the decoder
reads the true previous character); evaluation decodes greedily (it reads its
own previous guess) and counts exact matches. The problems are generated; the
1,000 test sums never appear in training::

    python -m ramie.examples.seq2seq                   # about 10 s on 2 CPU cores
    python -m ramie.examples.seq2seq --digits 3 --hidden 256 --learning-rate 5e-3 --epochs 30
"""

from __future__ import annotations

import argparse
import time

import jax.numpy as jnp
import numpy as np
import optax

from ramie import nn
from ramie.examples import common
from ramie.serialization import CheckpointManager

VOCAB = " 0123456789+="  # " " pads, "=" starts the answer
START = VOCAB.index("=")


def problems(n: int, digits: int, rng, exclude=frozenset()) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random sums, none of them in ``exclude`` (pairs ``(a, b)``), as token arrays:
    the questions "a+b" and the answers, space-padded."""
    a, b = rng.integers(0, 10**digits, (2, 2 * n))
    pairs = [(x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True) if (x, y) not in exclude]
    questions = [f"{x}+{y}".ljust(2 * digits + 1) for x, y in pairs[:n]]
    answers = [str(x + y).ljust(digits + 1) for x, y in pairs[:n]]
    return encode(questions), encode(answers)


def pairs(questions: np.ndarray) -> set[tuple[int, int]]:
    """The ``(a, b)`` of each question."""
    return {tuple(map(int, text.split("+"))) for text in decode(questions)}


def encode(texts: list[str]) -> np.ndarray:
    return np.array([[VOCAB.index(c) for c in text] for text in texts], np.int32)


def decode(tokens) -> list[str]:
    return ["".join(VOCAB[int(t)] for t in row) for row in np.asarray(tokens)]


class Seq2Seq(nn.Module):
    def __init__(self, embedding: int, hidden: int, *, rngs: nn.Rngs):
        self.embed = nn.Embed(len(VOCAB), embedding, rngs=rngs)
        cell = nn.LSTMCell(embedding, hidden, rngs=rngs)
        self.encoder = nn.RNN(cell, return_carry=True, reverse=True)
        self.decoder = nn.RNN(nn.LSTMCell(embedding, hidden, rngs=rngs))
        self.out = nn.Linear(hidden, len(VOCAB), rngs=rngs)

    def __call__(self, questions, answers):
        """Teacher forcing: logits for each answer character, given the true previous ones."""
        carry, _ = self.encoder(self.embed(questions))
        previous = jnp.concatenate([jnp.full_like(answers[:, :1], START), answers[:, :-1]], 1)
        return self.out(self.decoder(self.embed(previous), initial_carry=carry))

    def greedy(self, questions, length: int):
        """Greedy decoding: each step reads the previous step's most likely character."""
        carry, _ = self.encoder(self.embed(questions))
        token = jnp.full((questions.shape[0],), START)
        answer = []
        for _ in range(length):
            carry, h = self.decoder.cell(carry, self.embed(token))
            token = self.out(h).argmax(-1)
            answer.append(token)
        return jnp.stack(answer, axis=1)


def loss_fn(model, questions, answers):
    logits = model(questions, answers)
    return optax.softmax_cross_entropy_with_integer_labels(logits, answers).mean(), logits


@nn.jit
def train_step(model, optimizer, metrics, questions, answers):
    (loss, logits), grads = nn.value_and_grad(loss_fn, has_aux=True)(model, questions, answers)
    optimizer.update(grads)
    metrics.update(loss=loss, logits=logits, labels=answers)  # accuracy per character


@nn.jit(static_argnames="length")
def predict(model, questions, length):
    return model.greedy(questions, length)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        "python -m ramie.examples.seq2seq",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--digits", type=int, default=2, help="the largest numbers' length")
    parser.add_argument("--embedding", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0, help="initialisation and problems")
    parser.add_argument("--workdir", help="save a checkpoint there after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --workdir's latest")
    parser.add_argument("--plot", metavar="PATH", help="write the training curves to a PNG")
    args = parser.parse_args(argv)
    if args.resume and not args.workdir:
        parser.error("--resume needs --workdir")
    return args


def main(argv=None) -> float:
    args = parse_args(argv)
    start_time = time.perf_counter()
    rng = np.random.default_rng(common.SPLIT_SEED)
    test_questions, test_answers = problems(1000, args.digits, rng)  # the same every run
    unseen = pairs(test_questions)  # never given in training: the test measures generalisation

    model = Seq2Seq(args.embedding, args.hidden, rngs=nn.Rngs(args.seed))
    schedule = optax.cosine_decay_schedule(args.learning_rate, args.epochs * args.steps_per_epoch)
    optimizer = nn.Optimizer(
        model, optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))
    )
    metrics = nn.metrics.MultiMetric(
        loss=nn.metrics.Average("loss"), char_accuracy=nn.metrics.Accuracy()
    )

    checkpointed = optimizer
    history, done = [], 0
    manager = CheckpointManager(args.workdir, max_to_keep=2) if args.workdir else None
    if args.resume and manager.latest_step() is not None:
        done = manager.latest_step()
        nn.update(checkpointed, manager.restore(target=nn.state(checkpointed)))
        history = manager.metadata()["history"]
        print(f"resumed from {args.workdir} after epoch {done}")

    for epoch in range(done + 1, args.epochs + 1):
        rng = np.random.default_rng([args.seed, epoch])  # this epoch's problems, resumable
        bar = common.progress(range(args.steps_per_epoch), epoch, args.epochs)
        for step in bar:
            questions, answers = problems(args.batch_size, args.digits, rng, exclude=unseen)
            train_step(model, optimizer, metrics, questions, answers)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{float(metrics.loss.compute()):.4f}", refresh=False)
        row = {f"train_{name}": float(value) for name, value in metrics.compute().items()}
        metrics.reset()
        guesses = predict(model, test_questions, length=test_answers.shape[1])
        row["test_exact_match_accuracy"] = float((guesses == test_answers).all(axis=1).mean())
        history.append(row)
        common.log_epoch(epoch, row)
        if manager:
            manager.save(epoch, nn.state(checkpointed), metadata={"history": history})

    if args.plot:
        common.plot(history, args.plot, "LSTM seq2seq addition")
    for question, guess in zip(decode(test_questions[:3]), decode(guesses[:3]), strict=True):
        print(f"{question.strip()} = {guess.strip()}")
    print(f"{len(history)} epochs, {time.perf_counter() - start_time:.1f} s in this run")
    accuracy = history[-1]["test_exact_match_accuracy"]
    print(f"test exact-match accuracy: {accuracy:.1%}")
    return accuracy


if __name__ == "__main__":
    main()
