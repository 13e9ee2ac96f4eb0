"""Semantic segmentation: a tiny U-Net labels every pixel of synthetic shapes.

Each image holds one to three noisy shapes (circles, squares, triangles, drawn
with numpy from a seed) on a noisy background; all shapes have the same
brightness, so telling them apart needs their outline, not their colour. The
U-Net encodes with convolutions and pooling, decodes with ``ConvTranspose``,
and concatenates each encoder level into the decoder level of the same size
(the skip connections). The loss is pixel-wise cross-entropy; the result is
the mean intersection-over-union over the four classes::

    python -m ramie.examples.segmentation              # about a minute on 2 CPU cores
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

CLASSES = ("background", "circle", "square", "triangle")


def shapes(n: int, size: int, rng) -> common.Dataset:
    """``n`` images (N, size, size, 1) and their masks of class indices (N, size, size)."""
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), np.int32)
    for mask in masks:
        for _ in range(rng.integers(1, 4)):  # later shapes cover earlier ones
            kind, radius = rng.integers(1, 4), rng.integers(size // 8, size // 4 + 1)
            cy, cx = rng.integers(radius, size - radius, 2)
            dy, dx = yy - cy, xx - cx
            if CLASSES[kind] == "circle":
                inside = dy**2 + dx**2 <= radius**2
            elif CLASSES[kind] == "square":
                inside = (np.abs(dy) <= 0.8 * radius) & (np.abs(dx) <= 0.8 * radius)
            else:  # a triangle pointing up
                inside = (np.abs(dy) <= radius) & (np.abs(dx) <= (dy + radius) / 2)
            mask[inside] = kind
    images = (masks > 0) + rng.normal(0.0, 0.3, masks.shape)
    return {"image": images.astype(np.float32)[..., None], "label": masks}


def conv_block(in_features: int, features: int, rngs: nn.Rngs) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv(in_features, features, (3, 3), rngs=rngs),
        nn.relu,
        nn.Conv(features, features, (3, 3), rngs=rngs),
        nn.relu,
    )


class UNet(nn.Module):
    """Two levels down, two up; each level's encoder output skips across to its decoder."""

    def __init__(self, classes: int, width: int, *, rngs: nn.Rngs):
        self.down1 = conv_block(1, width, rngs)
        self.down2 = conv_block(width, 2 * width, rngs)
        self.bottom = conv_block(2 * width, 4 * width, rngs)
        self.up2 = nn.ConvTranspose(4 * width, 2 * width, (2, 2), strides=2, rngs=rngs)
        self.decode2 = conv_block(4 * width, 2 * width, rngs)
        self.up1 = nn.ConvTranspose(2 * width, width, (2, 2), strides=2, rngs=rngs)
        self.decode1 = conv_block(2 * width, width, rngs)
        self.classify = nn.Conv(width, classes, (1, 1), rngs=rngs)

    def __call__(self, x):
        def pool(x):
            return nn.max_pool(x, (2, 2), strides=(2, 2))

        skip1 = self.down1(x)  # size
        skip2 = self.down2(pool(skip1))  # size / 2
        x = self.bottom(pool(skip2))  # size / 4
        x = self.decode2(jnp.concatenate([self.up2(x), skip2], axis=-1))  # size / 2
        x = self.decode1(jnp.concatenate([self.up1(x), skip1], axis=-1))  # size
        return self.classify(x)  # logits for every pixel


def loss_fn(model, images, masks):
    logits = model(images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, masks).mean(), logits


@nn.jit
def train_step(model, optimizer, metrics, images, masks):
    (loss, logits), grads = nn.value_and_grad(loss_fn, has_aux=True)(model, images, masks)
    optimizer.update(grads)
    metrics.update(loss=loss, logits=logits, labels=masks)  # accuracy per pixel


@nn.jit
def eval_step(model, metrics, images, masks):
    """Update the loss and pixel accuracy; return the confusion matrix (true, predicted)."""
    loss, logits = loss_fn(model, images, masks)
    metrics.update(loss=loss, logits=logits, labels=masks)
    classes = logits.shape[-1]
    pairs = masks.ravel() * classes + logits.argmax(-1).ravel()
    return jnp.bincount(pairs, length=classes * classes).reshape(classes, classes)


def mean_iou(confusion: np.ndarray) -> float:
    """The intersection over union of each class, averaged over the classes."""
    intersection = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    return float(np.mean(intersection / np.maximum(union, 1)))


def evaluate(model, metrics, data, batch_size=100):
    confusion = 0
    for i in range(0, len(data["label"]), batch_size):
        batch = data["image"][i : i + batch_size], data["label"][i : i + batch_size]
        confusion = confusion + np.asarray(eval_step(model, metrics, *batch))
    result = {name: float(value) for name, value in metrics.compute().items()}
    metrics.reset()
    return result | {"mean_iou": mean_iou(confusion)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        "python -m ramie.examples.segmentation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--train-size", type=int, default=1000, help="synthetic training images")
    parser.add_argument("--image-size", type=int, default=32, help="a multiple of 4")
    parser.add_argument("--width", type=int, default=16, help="channels of the first level")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batch order")
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
    rng = np.random.default_rng(common.SPLIT_SEED)  # the same images every run
    train, test = shapes(args.train_size, args.image_size, rng), shapes(200, args.image_size, rng)
    steps_per_epoch = len(train["label"]) // args.batch_size

    model = UNet(len(CLASSES), args.width, rngs=nn.Rngs(args.seed))
    schedule = optax.cosine_decay_schedule(args.learning_rate, args.epochs * steps_per_epoch)
    optimizer = nn.Optimizer(model, optax.adam(schedule))
    metrics = nn.metrics.MultiMetric(
        loss=nn.metrics.Average("loss"), pixel_accuracy=nn.metrics.Accuracy()
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
        order = common.batches(len(train["label"]), args.batch_size, seed=args.seed, epoch=epoch)
        bar = common.progress(order, epoch, args.epochs)
        for step, batch in enumerate(bar):
            train_step(model, optimizer, metrics, train["image"][batch], train["label"][batch])
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
        common.plot(history, args.plot, "U-Net segmentation")
    print(f"{len(history)} epochs, {time.perf_counter() - start_time:.1f} s in this run")
    iou = history[-1]["test_mean_iou"]
    print(f"test mean IoU: {iou:.1%}")
    return iou


if __name__ == "__main__":
    main()
