"""resnet: the ResNet-18 shape, BatchNorm in train and eval mode, the CIFAR-10 loader."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from example_runs import run

from ramie import nn
from ramie.examples import common, resnet


def count(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def test_resnet18_shape_has_resnet18s_parameter_count():
    model = nn.eval_shape(lambda: resnet.ResNet(3, [2, 2, 2, 2], 64, 10, rngs=nn.Rngs(0)))
    assert count(nn.state(model, nn.Param)) == 11_173_962  # ResNet-18 for 32x32 CIFAR-10
    assert len(model.blocks.layers) == 8
    assert model.blocks.layers[2].shortcut is not None  # first block of stage 2 downsamples
    assert model.blocks.layers[3].shortcut is None


def test_eval_mode_leaves_batchnorm_statistics_untouched():
    model = resnet.ResNet(1, [1, 1], 8, 10, rngs=nn.Rngs(0))
    metrics = nn.metrics.MultiMetric(
        loss=nn.metrics.Average("loss"), accuracy=nn.metrics.Accuracy()
    )
    images = jax.random.uniform(jax.random.key(1), (16, 16, 16, 1))
    labels = jnp.arange(16) % 10
    before = jax.tree.map(np.array, nn.state(model, nn.BatchStat))

    model.eval()
    resnet.eval_step(model, metrics, images, labels)
    after_eval = nn.state(model, nn.BatchStat)
    jax.tree.map(np.testing.assert_array_equal, before, after_eval)

    model.train()  # the same call in train mode moves every running statistic
    resnet.eval_step(model, metrics, images, labels)
    after_train = jax.tree.leaves(nn.state(model, nn.BatchStat))
    for old, new in zip(jax.tree.leaves(before), after_train, strict=True):
        assert not np.allclose(old, new)


def test_evaluate_uses_running_averages_and_returns_to_train_mode():
    train, test = (resnet.upsample(data, 16) for data in common.digits())
    model = resnet.ResNet(1, [1], 8, 10, rngs=nn.Rngs(0))
    model.train()
    before = jax.tree.map(np.array, nn.state(model, nn.BatchStat))
    metrics = nn.metrics.MultiMetric(
        loss=nn.metrics.Average("loss"), accuracy=nn.metrics.Accuracy()
    )
    result = resnet.evaluate(model, metrics, test)
    assert set(result) == {"loss", "accuracy"} and 0 <= result["accuracy"] <= 1
    jax.tree.map(np.testing.assert_array_equal, before, nn.state(model, nn.BatchStat))
    assert model.stem_bn.use_running_average is False


def write_cifar(folder, n_train=(40, 24), n_test=32, seed=0):
    """CIFAR-10 binary batches: one label byte, then 3x32x32 pixel bytes, per record."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, n in [
        *((f"data_batch_{i + 1}.bin", k) for i, k in enumerate(n_train)),
        ("test_batch.bin", n_test),
    ]:
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        pixels = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        records = np.concatenate([labels[:, None], pixels.reshape(n, -1)], axis=1)
        (folder / name).write_bytes(records.tobytes())
        arrays[name] = labels, pixels
    return arrays


def test_cifar10_reads_binary_batches(tmp_path):
    arrays = write_cifar(tmp_path)
    train, test = common.cifar10(tmp_path)
    assert train["image"].shape == (64, 32, 32, 3) and test["image"].shape == (32, 32, 32, 3)
    labels, pixels = arrays["data_batch_2.bin"]
    np.testing.assert_array_equal(train["label"][40:], labels)
    np.testing.assert_allclose(train["image"][40:], pixels.transpose(0, 2, 3, 1) / 255.0, rtol=1e-6)
    assert train["image"].dtype == np.float32 and train["label"].dtype == np.int32


def test_cifar10_loader_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="found no data_batch_\\*.bin or no test_batch.bin"):
        common.cifar10(tmp_path)
    write_cifar(tmp_path)
    (tmp_path / "test_batch.bin").write_bytes(b"\x00" * 3074)
    with pytest.raises(ValueError, match="3074 bytes is not a whole number of records"):
        common.cifar10(tmp_path)


def test_main_trains_on_cifar10_files(capsys, tmp_path):
    write_cifar(tmp_path)
    argv = ["--data-dir", str(tmp_path), "--epochs", "1", "--width", "4", "--stages", "1"]
    accuracy, lines = run(capsys, "resnet", argv)
    assert accuracy * 32 == round(accuracy * 32)  # 32 test images
    assert lines[-1] == f"test accuracy: {accuracy:.1%}"


def test_augment_flips_some_images_horizontally():
    images = np.random.default_rng(0).random((64, 4, 5, 3))
    flipped = resnet.augment(images, np.random.default_rng(1))
    same = [np.array_equal(a, b) for a, b in zip(images, flipped, strict=True)]
    mirrored = [np.array_equal(a[:, ::-1], b) for a, b in zip(images, flipped, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 10 < sum(mirrored) < 54
