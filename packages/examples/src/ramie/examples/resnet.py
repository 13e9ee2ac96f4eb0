"""ResNet v1.5: residual blocks with BatchNorm, on the digits upsampled to 32x32 (or CIFAR-10).

Depth and width are flags: the default is a tiny three-stage net that trains in
about a minute on 2 CPU cores; ``--stages 2,2,2,2 --width 64`` is the ResNet-18
shape. BatchNorm keeps running statistics: ``model.train()`` before training
(batch statistics, running averages updated) and ``model.eval()`` before
evaluating (running averages used, never changed)::

    python -m ramie.examples.resnet
    python -m ramie.examples.resnet --stages 2,2,2,2 --width 64 --data-dir ~/cifar-10-batches-bin
    python -m ramie.examples.resnet --workdir ckpt --resume
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ramie import nn
from ramie.examples import common
from ramie.serialization import CheckpointManager


class Block(nn.Module):
    """Two 3x3 convolutions and a shortcut; v1.5: a block that downsamples does it in its
    first 3x3 convolution, and its shortcut is a strided 1x1 convolution with BatchNorm."""

    def __init__(self, in_features: int, features: int, stride: int, *, rngs: nn.Rngs):
        self.conv1 = nn.Conv(in_features, features, (3, 3), stride, use_bias=False, rngs=rngs)
        self.bn1 = nn.BatchNorm(features, momentum=0.9, rngs=rngs)
        self.conv2 = nn.Conv(features, features, (3, 3), use_bias=False, rngs=rngs)
        # The last BatchNorm of each block starts at zero: every block starts as the identity.
        zeros = nn.initializers.zeros
        self.bn2 = nn.BatchNorm(features, momentum=0.9, scale_init=zeros, rngs=rngs)
        self.shortcut = None
        if stride != 1 or in_features != features:
            self.shortcut = nn.Sequential(
                nn.Conv(in_features, features, (1, 1), stride, use_bias=False, rngs=rngs),
                nn.BatchNorm(features, momentum=0.9, rngs=rngs),
            )

    def __call__(self, x):
        residual = x if self.shortcut is None else self.shortcut(x)
        x = nn.relu(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return nn.relu(x + residual)


class ResNet(nn.Module):
    """A 3x3 stem, then stages of blocks (width doubling, resolution halving), then a
    global average pool and a linear classifier."""

    def __init__(self, channels: int, stages: list[int], width: int, classes: int, *, rngs):
        self.stem = nn.Conv(channels, width, (3, 3), use_bias=False, rngs=rngs)
        self.stem_bn = nn.BatchNorm(width, momentum=0.9, rngs=rngs)
        blocks, features = [], width
        for stage, depth in enumerate(stages):
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(Block(features, width * 2**stage, stride, rngs=rngs))
                features = width * 2**stage
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(features, classes, rngs=rngs)

    def __call__(self, x):
        x = nn.relu(self.stem_bn(self.stem(x)))
        x = self.blocks(x)
        return self.head(x.mean(axis=(1, 2)))  # logits


def loss_fn(model, images, labels):
    logits = model(images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits


@nn.jit
def train_step(model, optimizer, metrics, images, labels):
    (loss, logits), grads = nn.value_and_grad(loss_fn, has_aux=True)(model, images, labels)
    optimizer.update(grads)  # parameters change, and so do BatchNorm's running statistics
    metrics.update(loss=loss, logits=logits, labels=labels)


@nn.jit
def eval_step(model, metrics, images, labels):
    loss, logits = loss_fn(model, images, labels)
    metrics.update(loss=loss, logits=logits, labels=labels)


def evaluate(model, metrics, data, batch_size=500):
    """Loss and accuracy on ``data`` in eval mode (then back to train mode)."""
    model.eval()
    for i in range(0, len(data["label"]), batch_size):
        eval_step(
            model, metrics, data["image"][i : i + batch_size], data["label"][i : i + batch_size]
        )
    model.train()
    result = {name: float(value) for name, value in metrics.compute().items()}
    metrics.reset()
    return result


def upsample(data, size):
    """The 8x8 digits resized (bilinear) to ``size`` x ``size``, the input size of a ResNet."""
    n, _, _, channels = data["image"].shape
    images = jax.image.resize(data["image"], (n, size, size, channels), "bilinear")
    return {"image": np.asarray(images), "label": data["label"]}


def augment(images, rng):
    """Random horizontal flips (CIFAR-10 only: a mirrored digit is another symbol)."""
    flip = rng.random(len(images)) < 0.5
    return np.where(flip[:, None, None, None], images[:, :, ::-1], images)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        "python -m ramie.examples.resnet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.1, help="SGD, cosine decay")
    parser.add_argument("--stages", default="1,1,1", help="blocks per stage (ResNet-18: 2,2,2,2)")
    parser.add_argument("--width", type=int, default=16, help="channels of the first stage")
    parser.add_argument("--image-size", type=int, default=32, help="digits: upsample to this")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batch order")
    parser.add_argument("--data-dir", help="CIFAR-10: the folder of its binary batches")
    parser.add_argument("--workdir", help="save a checkpoint there after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --workdir's latest")
    parser.add_argument("--plot", metavar="PATH", help="write the training curves to a PNG")
    args = parser.parse_args(argv)
    if args.resume and not args.workdir:
        parser.error("--resume needs --workdir")
    args.stages = [int(depth) for depth in args.stages.split(",")]
    return args


def main(argv=None) -> float:
    args = parse_args(argv)
    start_time = time.perf_counter()
    if args.data_dir:
        train, test = common.cifar10(args.data_dir)
    else:
        train, test = (upsample(data, args.image_size) for data in common.digits())
    steps_per_epoch = len(train["label"]) // args.batch_size

    channels = train["image"].shape[-1]
    model = ResNet(channels, args.stages, args.width, 10, rngs=nn.Rngs(args.seed))
    model.train()
    schedule = optax.cosine_decay_schedule(args.learning_rate, args.epochs * steps_per_epoch)
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(schedule, momentum=0.9))
    optimizer = nn.Optimizer(model, tx)
    metrics = nn.metrics.MultiMetric(
        loss=nn.metrics.Average("loss"), accuracy=nn.metrics.Accuracy()
    )

    checkpointed = optimizer  # the model inside holds the BatchNorm statistics too
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
            images = train["image"][batch]
            if args.data_dir:
                images = augment(images, rng)
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
        common.plot(history, args.plot, "resnet")
    print(f"{len(history)} epochs, {time.perf_counter() - start_time:.1f} s in this run")
    accuracy = history[-1]["test_accuracy"]
    print(f"test accuracy: {accuracy:.1%}")
    return accuracy


if __name__ == "__main__":
    main()
