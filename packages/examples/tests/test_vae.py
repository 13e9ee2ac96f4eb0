"""vae: the latent is drawn from the named ``noise`` stream, gradients flow, the pictures."""

from __future__ import annotations

import jax.numpy as jnp
import matplotlib.image
import numpy as np
from example_runs import run

from ramie import nn
from ramie.examples import common, vae


def test_latents_come_from_the_noise_stream_only():
    model = vae.VAE(4, rngs=nn.Rngs(params=0, noise=1))
    images = jnp.asarray(common.digits()[1]["image"][:5])
    params_count = int(model.rngs.params.count.value)
    first, mean, log_var = model(images)
    second, mean2, _ = model(images)
    assert int(model.rngs.noise.count.value) == 2
    assert int(model.rngs.params.count.value) == params_count
    np.testing.assert_array_equal(mean, mean2)  # the encoder is deterministic...
    assert not np.allclose(first, second)  # ...the draw is not
    again = vae.VAE(4, rngs=nn.Rngs(params=0, noise=1))
    np.testing.assert_array_equal(again(images)[0], first)  # reproducible from the seeds
    assert first.shape == (5, 8, 8, 1) and mean.shape == log_var.shape == (5, 4)


def test_the_loss_is_reconstruction_plus_kl_and_both_get_gradients():
    model = vae.VAE(4, rngs=nn.Rngs(params=0, noise=1))
    images = jnp.asarray(common.digits()[1]["image"][:8])
    (loss, (reconstruction, kl)), grads = nn.value_and_grad(vae.loss_fn, has_aux=True)(
        model, images
    )
    np.testing.assert_allclose(loss, reconstruction + kl, rtol=1e-6)
    assert float(kl) > 0 and float(reconstruction) > 0
    # Through the reparameterisation, the loss reaches the standard deviation's layer.
    assert float(jnp.abs(grads["log_var"]["kernel"].value).sum()) > 0
    assert float(jnp.abs(grads["mean"]["kernel"].value).sum()) > 0


def test_kl_of_the_prior_itself_is_zero():
    model = vae.VAE(3, rngs=nn.Rngs(params=0, noise=1))
    for layer in (model.mean, model.log_var):  # the encoder now outputs N(0, 1) exactly
        layer.kernel.value = jnp.zeros_like(layer.kernel.value)
    _, (_, kl) = vae.loss_fn(model, jnp.zeros((2, 8, 8, 1)))
    assert float(kl) == 0.0


def test_samples_are_images_in_the_unit_interval():
    model = vae.VAE(4, rngs=nn.Rngs(params=0, noise=1))
    samples = model.sample(6)
    assert samples.shape == (6, 8, 8, 1)
    assert float(samples.min()) >= 0 and float(samples.max()) <= 1
    assert not np.allclose(samples[0], samples[1])


def test_plot_writes_samples_and_reconstructions_too(capsys, tmp_path):
    png = tmp_path / "curves.png"
    _, lines = run(capsys, "vae", ["--epochs", "1", "--plot", str(png)])
    grid = tmp_path / "curves-samples.png"
    assert f"images written to {grid.resolve()}" in lines
    height, width, _ = matplotlib.image.imread(grid).shape
    assert (width, height) == (800, 280)  # ten columns, three rows
    assert lines[-1].startswith("test ELBO: ")
