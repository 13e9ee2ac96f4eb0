"""Polyak averaging: the ``mnist`` example, evaluated also with an EMA of its parameters.

The seed's HOWTO as a diff: ``main`` and ``train_step`` are ``mnist``'s with
the EMA lines added (compare them side by side); everything else is imported
from ``mnist``. ``nn.EMA`` keeps the average in a copy of the model, so
evaluating with it is ``eval_step(ema.averaged, ...)``::

    python -m ramie.examples.polyak            # about 15 s on 2 CPU cores
"""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np
import optax

from ramie import nn
from ramie.examples import common
from ramie.examples.mnist import CNN, evaluate, loss_fn, shift
from ramie.examples.mnist import parse_args as _parse_args
from ramie.serialization import CheckpointManager

EMA_DECAY = 0.99  # average <- 0.99 * average + 0.01 * parameter, after every step


@nn.jit
def train_step(model, optimizer, ema, metrics, images, labels):
    (loss, logits), grads = nn.value_and_grad(loss_fn, has_aux=True)(model, images, labels)
    optimizer.update(grads)  # the model's parameters change in place
    ema.update()  # then the average moves towards them
    metrics.update(loss=loss, logits=logits, labels=labels)


def parse_args(argv=None):
    return _parse_args(argv, "python -m ramie.examples.polyak", __doc__)


def main(argv=None) -> tuple[float, float]:
    args = parse_args(argv)
    start_time = time.perf_counter()
    train, test = common.mnist(args.data_dir) if args.data_dir else common.digits()
    steps_per_epoch = len(train["label"]) // args.batch_size

    model = CNN(train["image"].shape[1], rngs=nn.Rngs(args.seed))
    schedule = optax.cosine_decay_schedule(args.learning_rate, args.epochs * steps_per_epoch)
    optimizer = nn.Optimizer(model, optax.adam(schedule))
    ema = nn.EMA(model, decay=EMA_DECAY)  # a Polyak average of the parameters
    metrics = nn.metrics.MultiMetric(
        loss=nn.metrics.Average("loss"), accuracy=nn.metrics.Accuracy()
    )

    checkpointed = (optimizer, ema)  # the EMA's averages are part of the run too
    history, done = [], 0
    manager = CheckpointManager(args.workdir, max_to_keep=2) if args.workdir else None
    if args.resume and manager.latest_step() is not None:
        done = manager.latest_step()
        nn.update(checkpointed, manager.restore(target=nn.state(checkpointed)))
        history = manager.metadata()["history"]
        print(f"resumed from {args.workdir} after epoch {done}")

    for epoch in range(done + 1, args.epochs + 1):
        rng = np.random.default_rng([args.seed, epoch, 1])  # augmentation, resumable
        order = common.batches(len(train["label"]), args.batch_size, seed=args.seed, epoch=epoch)
        bar = common.progress(order, epoch, args.epochs)
        for step, batch in enumerate(bar):
            images = shift(train["image"][batch], rng, args.shift)
            train_step(model, optimizer, ema, metrics, jnp.asarray(images), train["label"][batch])
            if step % 10 == 0:
                bar.set_postfix(loss=f"{float(metrics.loss.compute()):.4f}", refresh=False)
        row = {f"train_{name}": float(value) for name, value in metrics.compute().items()}
        metrics.reset()
        row |= {f"test_{name}": value for name, value in evaluate(model, metrics, test).items()}
        ema_test = evaluate(ema.averaged, metrics, test)  # the same, with the averages
        row |= {f"ema_test_{name}": value for name, value in ema_test.items()}
        history.append(row)
        common.log_epoch(epoch, row)
        if manager:
            manager.save(epoch, nn.state(checkpointed), metadata={"history": history})

    if args.plot:
        common.plot(history, args.plot, "mnist + Polyak averaging (ema)")
    print(f"{len(history)} epochs, {time.perf_counter() - start_time:.1f} s in this run")
    accuracy = history[-1]["test_accuracy"]
    ema_accuracy = history[-1]["ema_test_accuracy"]
    print(f"test accuracy: {accuracy:.1%}, with the EMA weights: {ema_accuracy:.1%}")
    return accuracy, ema_accuracy


if __name__ == "__main__":
    main()
