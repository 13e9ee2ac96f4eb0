"""A small DCGAN on the digits: a generator and a discriminator, two optimizers.

Both networks live in one model; each has its own ``nn.Optimizer`` over its
own part, and one train step updates them in turn: the discriminator on real
digits against generated ones, then the generator to fool the updated
discriminator (the non-saturating loss). Strided convolutions, transposed
convolutions and leaky ReLUs, as in DCGAN. ``--plot`` also writes a grid of
samples::

    python -m ramie.examples.gan                       # about 20 s on 2 CPU cores
    python -m ramie.examples.gan --plot curves.png
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

from ramie import nn
from ramie.examples import common
from ramie.serialization import CheckpointManager


def leaky_relu(x):
    return nn.leaky_relu(x, 0.2)


class Generator(nn.Module):
    """Latent -> 2x2x64 -> 4x4x32 -> 8x8x1 pixels in [0, 1]."""

    def __init__(self, latent: int, *, rngs: nn.Rngs):
        self.project = nn.Linear(latent, 2 * 2 * 64, rngs=rngs)
        self.up1 = nn.ConvTranspose(64, 32, (3, 3), strides=2, rngs=rngs)
        self.up2 = nn.ConvTranspose(32, 1, (3, 3), strides=2, rngs=rngs)

    def __call__(self, z):
        x = nn.relu(self.project(z)).reshape(z.shape[0], 2, 2, 64)
        return nn.sigmoid(self.up2(nn.relu(self.up1(x))))


class Discriminator(nn.Module):
    """8x8x1 -> 4x4x32 -> 2x2x64 -> one logit: real (> 0) or generated (< 0)."""

    def __init__(self, *, rngs: nn.Rngs):
        self.conv1 = nn.Conv(1, 32, (3, 3), strides=2, rngs=rngs)
        self.conv2 = nn.Conv(32, 64, (3, 3), strides=2, rngs=rngs)
        self.out = nn.Linear(2 * 2 * 64, 1, rngs=rngs)

    def __call__(self, images):
        x = leaky_relu(self.conv2(leaky_relu(self.conv1(images))))
        return self.out(x.reshape(x.shape[0], -1))[:, 0]


class GAN(nn.Module):
    def __init__(self, latent: int, *, rngs: nn.Rngs):
        self.latent = latent
        self.generator = Generator(latent, rngs=rngs)
        self.discriminator = Discriminator(rngs=rngs)
        self.rngs = rngs  # the "noise" stream draws the latents

    def generate(self, n: int):
        return self.generator(jax.random.normal(self.rngs.noise(), (n, self.latent)))


def bce(logits, label):
    return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)).mean()


def discriminator_loss(discriminator, real, fake):
    real_logits, fake_logits = discriminator(real), discriminator(fake)
    accuracy = ((real_logits > 0).mean() + (fake_logits < 0).mean()) / 2
    return bce(real_logits, 1.0) + bce(fake_logits, 0.0), accuracy


def generator_loss(generator, discriminator, z):
    return bce(discriminator(generator(z)), 1.0)  # non-saturating: "call my fakes real"


@nn.jit
def train_step(model, g_optimizer, d_optimizer, metrics, real):
    fake = jax.lax.stop_gradient(model.generate(len(real)))
    (d_loss, accuracy), grads = nn.value_and_grad(discriminator_loss, has_aux=True)(
        model.discriminator, real, fake
    )
    d_optimizer.update(grads)  # only the discriminator's parameters change
    z = jax.random.normal(model.rngs.noise(), (len(real), model.latent))
    g_loss, grads = nn.value_and_grad(generator_loss)(model.generator, model.discriminator, z)
    g_optimizer.update(grads)  # only the generator's
    metrics.update(d_loss=d_loss, g_loss=g_loss, d_accuracy=accuracy)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        "python -m ramie.examples.gan",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="adam, both networks")
    parser.add_argument("--latent", type=int, default=16, help="dimensions of the latent space")
    parser.add_argument("--seed", type=int, default=0, help="initialisation, noise, batch order")
    parser.add_argument("--workdir", help="save a checkpoint there after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --workdir's latest")
    parser.add_argument("--plot", metavar="PATH", help="write the curves (and samples) to PNGs")
    args = parser.parse_args(argv)
    if args.resume and not args.workdir:
        parser.error("--resume needs --workdir")
    return args


def main(argv=None) -> dict[str, float]:
    args = parse_args(argv)
    start_time = time.perf_counter()
    train, _ = common.digits()  # a GAN has no test set: it only models the training images

    model = GAN(args.latent, rngs=nn.Rngs(params=args.seed, noise=args.seed + 1))
    adam = optax.adam(args.learning_rate, b1=0.5)  # DCGAN's momentum
    g_optimizer = nn.Optimizer(model.generator, adam)
    d_optimizer = nn.Optimizer(model.discriminator, adam)
    metrics = nn.metrics.MultiMetric(
        d_loss=nn.metrics.Average("d_loss"),
        g_loss=nn.metrics.Average("g_loss"),
        d_accuracy=nn.metrics.Average("d_accuracy"),
    )

    checkpointed = (model, g_optimizer, d_optimizer)  # the noise stream is in the model
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
            train_step(model, g_optimizer, d_optimizer, metrics, jnp.asarray(train["image"][batch]))
            if step % 10 == 0:
                losses = {k: f"{float(metrics.compute()[k]):.3f}" for k in ("d_loss", "g_loss")}
                bar.set_postfix(losses, refresh=False)
        row = {name: float(value) for name, value in metrics.compute().items()}
        metrics.reset()
        history.append(row)
        common.log_epoch(epoch, row)
        if manager:
            manager.save(epoch, nn.state(checkpointed), metadata={"history": history})

    if args.plot:
        common.plot(history, args.plot, "DCGAN")
        samples = model.generate(30)
        rows = {"samples": samples[:10], "": samples[10:20], " ": samples[20:]}
        common.image_grid(rows, common.beside(args.plot, "samples"), "DCGAN samples")
    print(f"{len(history)} epochs, {time.perf_counter() - start_time:.1f} s in this run")
    last = history[-1]
    print(
        f"discriminator loss {last['d_loss']:.3f}, generator loss {last['g_loss']:.3f}, "
        f"discriminator accuracy {last['d_accuracy']:.1%}"
    )
    return last


if __name__ == "__main__":
    main()
