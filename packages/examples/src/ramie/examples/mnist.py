"""The main job: the seed README's CNN trained on handwritten digits with ramie and optax.

By default it trains on the 8x8 digits that ship inside scikit-learn (1,797
images, the same fixed train/test split every run) and needs nothing from the
network; ``--data-dir`` reads real MNIST from a local copy (the four IDX files,
gzipped or not, or ``mnist.npz``)::

    python -m ramie.examples.mnist                     # about 10 s on 2 CPU cores
    python -m ramie.examples.mnist --workdir ckpt --plot curves.png
    python -m ramie.examples.mnist --workdir ckpt --resume   # after an interruption
    python -m ramie.examples.mnist --data-dir ~/data/mnist --epochs 5

The recipe: adam with a cosine-decayed learning rate, and every training image
shifted by up to one pixel at random (the digits are tiny: one pixel matters).
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


class CNN(nn.Module):
    """Two 3x3 convolutions with 2x2 average pooling, then two dense layers."""

    def __init__(self, image_size: int, *, rngs: nn.Rngs):
        self.conv1 = nn.Conv(1, 32, kernel_size=(3, 3), rngs=rngs)
        self.conv2 = nn.Conv(32, 64, kernel_size=(3, 3), rngs=rngs)
        self.dense1 = nn.Linear(64 * (image_size // 4) ** 2, 256, rngs=rngs)
        self.dense2 = nn.Linear(256, 10, rngs=rngs)

    def __call__(self, x):
        x = nn.avg_pool(nn.relu(self.conv1(x)), window_shape=(2, 2), strides=(2, 2))
        x = nn.avg_pool(nn.relu(self.conv2(x)), window_shape=(2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)  # flatten
        return self.dense2(nn.relu(self.dense1(x)))  # logits


def loss_fn(model, images, labels):
    logits = model(images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits


@nn.jit
def train_step(model, optimizer, metrics, images, labels):
    (loss, logits), grads = nn.value_and_grad(loss_fn, has_aux=True)(model, images, labels)
    optimizer.update(grads)  # the model's parameters change in place
    metrics.update(loss=loss, logits=logits, labels=labels)


@nn.jit
def eval_step(model, metrics, images, labels):
    loss, logits = loss_fn(model, images, labels)
    metrics.update(loss=loss, logits=logits, labels=labels)


def evaluate(model, metrics, data, batch_size=1000):
    """Loss and accuracy on ``data``, in batches (real MNIST has 10,000 test images)."""
    for i in range(0, len(data["label"]), batch_size):
        images, labels = data["image"][i : i + batch_size], data["label"][i : i + batch_size]
        eval_step(model, metrics, images, labels)
    result = {name: float(value) for name, value in metrics.compute().items()}
    metrics.reset()
    return result


def shift(images, rng, pixels):
    """Move each image by up to ``pixels`` in each direction, filling with zeros."""
    n, height, width, _ = images.shape
    padded = np.pad(images, ((0, 0), (pixels, pixels), (pixels, pixels), (0, 0)))
    dy, dx = rng.integers(0, 2 * pixels + 1, size=(2, n))
    rows = (dy[:, None] + np.arange(height))[:, :, None]
    cols = (dx[:, None] + np.arange(width))[:, None, :]
    return padded[np.arange(n)[:, None, None], rows, cols]


def parse_args(argv=None, prog="python -m ramie.examples.mnist", description=__doc__):
    parser = argparse.ArgumentParser(
        prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3, help="the peak (first) rate")
    parser.add_argument("--shift", type=int, default=1, help="augmentation: max shift in pixels")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batch order")
    parser.add_argument("--data-dir", help="real MNIST: a folder with the IDX files or mnist.npz")
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
    train, test = common.mnist(args.data_dir) if args.data_dir else common.digits()
    steps_per_epoch = len(train["label"]) // args.batch_size

    model = CNN(train["image"].shape[1], rngs=nn.Rngs(args.seed))
    schedule = optax.cosine_decay_schedule(args.learning_rate, args.epochs * steps_per_epoch)
    optimizer = nn.Optimizer(model, optax.adam(schedule))
    metrics = nn.metrics.MultiMetric(
        loss=nn.metrics.Average("loss"), accuracy=nn.metrics.Accuracy()
    )

    checkpointed = optimizer  # the optimizer holds the model: all that a resumed run needs
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
            train_step(model, optimizer, metrics, jnp.asarray(images), train["label"][batch])
            if step % 10 == 0:
                bar.set_postfix(loss=f"{float(metrics.loss.compute()):.4f}", refresh=False)
        row = {f"train_{name}": float(value) for name, value in metrics.compute().items()}
        metrics.reset()
        row |= {f"test_{name}": value for name, value in evaluate(model, metrics, test).items()}
        history.append(row)
        common.log_epoch(epoch, row)
        if manager:
            manager.save(epoch, nn.state(checkpointed), metadata={"history": history})

    if args.plot:
        common.plot(history, args.plot, "mnist")
    print(f"{len(history)} epochs, {time.perf_counter() - start_time:.1f} s in this run")
    accuracy = history[-1]["test_accuracy"]
    print(f"test accuracy: {accuracy:.1%}")
    return accuracy


if __name__ == "__main__":
    main()
