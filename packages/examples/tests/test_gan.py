"""gan: two optimizers each move only their half; both losses move; samples vary."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from example_runs import epoch_log, run

from ramie import nn
from ramie.examples import common, gan
from ramie.serialization import CheckpointManager


def test_each_optimizer_moves_only_its_own_network():
    model = gan.GAN(8, rngs=nn.Rngs(params=0, noise=1))
    g_optimizer = nn.Optimizer(model.generator, gan.optax.adam(1e-3))
    d_optimizer = nn.Optimizer(model.discriminator, gan.optax.adam(1e-3))
    metrics = nn.metrics.MultiMetric(
        d_loss=nn.metrics.Average("d_loss"),
        g_loss=nn.metrics.Average("g_loss"),
        d_accuracy=nn.metrics.Average("d_accuracy"),
    )
    before = jax.tree.map(np.array, nn.state(model, nn.Param))
    real = jnp.asarray(common.digits()[0]["image"][:16])
    gan.train_step(model, g_optimizer, d_optimizer, metrics, real)
    after = nn.state(model, nn.Param)
    for part in ("generator", "discriminator"):
        for old, new in zip(
            jax.tree.leaves(before[part]), jax.tree.leaves(after[part]), strict=True
        ):
            assert not np.allclose(old, new), part
    assert int(g_optimizer.step.value) == int(d_optimizer.step.value) == 1
    assert int(model.rngs.noise.count.value) == 2  # one draw for each network's turn
    result = metrics.compute()
    assert 0 <= float(result["d_accuracy"]) <= 1 and float(result["d_loss"]) > 0


def test_discriminator_loss_and_accuracy_on_obvious_logits():
    class Fixed(nn.Module):  # calls real images real and fakes fake, confidently
        def __call__(self, images):
            return jnp.where(images.mean(axis=(1, 2, 3)) > 0.5, 20.0, -20.0)

    real, fake = jnp.ones((4, 8, 8, 1)), jnp.zeros((4, 8, 8, 1))
    loss, accuracy = gan.discriminator_loss(Fixed(), real, fake)
    assert float(accuracy) == 1.0 and float(loss) < 1e-8
    loss, accuracy = gan.discriminator_loss(Fixed(), fake, real)  # everything backwards
    assert float(accuracy) == 0.0 and float(loss) > 39


def test_both_losses_move_and_samples_are_not_constant(capsys, tmp_path):
    png, workdir = tmp_path / "curves.png", tmp_path / "run"
    result, lines = run(
        capsys, "gan", ["--epochs", "3", "--plot", str(png), "--workdir", str(workdir)]
    )
    log = epoch_log(lines)
    for loss in ("d_loss", "g_loss"):
        assert max(row[loss] for row in log) - min(row[loss] for row in log) > 0.01
    assert result["d_accuracy"] == pytest.approx(log[-1]["d_accuracy"], abs=5e-5)
    assert f"images written to {(tmp_path / 'curves-samples.png').resolve()}" in lines

    model = gan.GAN(16, rngs=nn.Rngs(params=0, noise=1))  # the trained generator, restored
    optimizers = [
        nn.Optimizer(part, gan.optax.adam(1e-3)) for part in (model.generator, model.discriminator)
    ]
    trio = (model, *optimizers)
    nn.update(trio, CheckpointManager(workdir).restore(target=nn.state(trio)))
    samples = np.asarray(model.generate(8))
    assert samples.shape == (8, 8, 8, 1) and 0 <= samples.min() and samples.max() <= 1
    assert samples.std(axis=0).mean() > 0.02  # different latents, different images
    assert samples.std(axis=(1, 2, 3)).min() > 0.05  # and no image is flat
