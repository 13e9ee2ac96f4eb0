"""A convolutional variational autoencoder on the digits, trained on the ELBO.

The encoder gives a Gaussian over a small latent space; a latent is drawn
from it by the reparameterisation trick (``mean + std * noise``, the noise from
the model's own named RNG stream ``noise``, so gradients flow through mean and
std); the decoder gives Bernoulli pixel probabilities. The loss is the
negative ELBO: reconstruction cross-entropy plus the KL divergence to the
standard normal prior, in nats per image. ``--plot`` also writes a grid of
samples from the prior and of test reconstructions::

    python -m ramie.examples.vae                       # 20-35 s on 2 CPU cores
    python -m ramie.examples.vae --latent 2 --plot curves.png
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


class VAE(nn.Module):
    def __init__(self, latent: int, *, rngs: nn.Rngs):
        self.latent = latent
        self.encoder = nn.Sequential(  # 8x8x1 -> 4x4x32 -> 2x2x64 -> 256
            nn.Conv(1, 32, (3, 3), strides=2, rngs=rngs),
            nn.relu,
            nn.Conv(32, 64, (3, 3), strides=2, rngs=rngs),
            nn.relu,
            lambda x: x.reshape(x.shape[0], -1),
        )
        self.mean = nn.Linear(256, latent, rngs=rngs)
        self.log_var = nn.Linear(256, latent, rngs=rngs)
        self.decoder_in = nn.Linear(latent, 256, rngs=rngs)
        self.decoder = nn.Sequential(  # 2x2x64 -> 4x4x32 -> 8x8x1 logits
            nn.ConvTranspose(64, 32, (3, 3), strides=2, rngs=rngs),
            nn.relu,
            nn.ConvTranspose(32, 1, (3, 3), strides=2, rngs=rngs),
        )
        self.rngs = rngs  # the "noise" stream draws the latents

    def decode(self, z):
        """Pixel logits for latents ``z`` (batch, latent)."""
        x = nn.relu(self.decoder_in(z)).reshape(z.shape[0], 2, 2, 64)
        return self.decoder(x)

    def __call__(self, images):
        h = self.encoder(images)
        mean, log_var = self.mean(h), self.log_var(h)
        noise = jax.random.normal(self.rngs.noise(), mean.shape)
        z = mean + jnp.exp(0.5 * log_var) * noise  # the reparameterisation trick
        return self.decode(z), mean, log_var

    def sample(self, n: int):
        """Images decoded from ``n`` latents drawn from the prior."""
        z = jax.random.normal(self.rngs.noise(), (n, self.latent))
        return nn.sigmoid(self.decode(z))


def loss_fn(model, images):
    """The negative ELBO in nats per image, and its two terms."""
    logits, mean, log_var = model(images)
    reconstruction = optax.sigmoid_binary_cross_entropy(logits, images).sum(axis=(1, 2, 3))
    kl = 0.5 * (jnp.exp(log_var) + mean**2 - 1 - log_var).sum(axis=-1)
    return (reconstruction + kl).mean(), (reconstruction.mean(), kl.mean())


@nn.jit
def train_step(model, optimizer, metrics, images):
    (loss, (reconstruction, kl)), grads = nn.value_and_grad(loss_fn, has_aux=True)(model, images)
    optimizer.update(grads)
    metrics.update(loss=loss, reconstruction=reconstruction, kl=kl)


@nn.jit
def eval_step(model, metrics, images):
    loss, (reconstruction, kl) = loss_fn(model, images)
    metrics.update(loss=loss, reconstruction=reconstruction, kl=kl)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        "python -m ramie.examples.vae",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--latent", type=int, default=8, help="dimensions of the latent space")
    parser.add_argument("--seed", type=int, default=0, help="initialisation, noise, batch order")
    parser.add_argument("--workdir", help="save a checkpoint there after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --workdir's latest")
    parser.add_argument("--plot", metavar="PATH", help="write the curves (and images) to PNGs")
    args = parser.parse_args(argv)
    if args.resume and not args.workdir:
        parser.error("--resume needs --workdir")
    return args


def main(argv=None) -> float:
    args = parse_args(argv)
    start_time = time.perf_counter()
    train, test = common.digits()

    model = VAE(args.latent, rngs=nn.Rngs(params=args.seed, noise=args.seed + 1))
    optimizer = nn.Optimizer(model, optax.adam(args.learning_rate))
    metrics = nn.metrics.MultiMetric(
        loss=nn.metrics.Average("loss"),
        reconstruction=nn.metrics.Average("reconstruction"),
        kl=nn.metrics.Average("kl"),
    )

    checkpointed = optimizer  # the model inside holds the noise stream's counter too
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
            train_step(model, optimizer, metrics, jnp.asarray(train["image"][batch]))
            if step % 10 == 0:
                bar.set_postfix(loss=f"{float(metrics.loss.compute()):.4f}", refresh=False)
        row = {f"train_{name}": float(value) for name, value in metrics.compute().items()}
        metrics.reset()
        eval_step(model, metrics, test["image"])
        row |= {f"test_{name}": float(value) for name, value in metrics.compute().items()}
        metrics.reset()
        history.append(row)
        common.log_epoch(epoch, row)
        if manager:
            manager.save(epoch, nn.state(checkpointed), metadata={"history": history})

    if args.plot:
        common.plot(history, args.plot, "convolutional VAE (nats per image)")
        reconstructions = nn.sigmoid(model(test["image"][:10])[0])
        images = {
            "test digits": test["image"][:10],
            "reconstructions": reconstructions,
            "samples from the prior": model.sample(10),
        }
        common.image_grid(images, common.beside(args.plot, "samples"), "VAE")
    print(f"{len(history)} epochs, {time.perf_counter() - start_time:.1f} s in this run")
    elbo = -history[-1]["test_loss"]
    print(f"test ELBO: {elbo:.2f} nats per image")
    return elbo


if __name__ == "__main__":
    main()
