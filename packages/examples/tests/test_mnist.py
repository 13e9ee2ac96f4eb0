"""The main job: the default run reaches 97%, the data loaders, the shift augmentation."""

from __future__ import annotations

import gzip
import re
import struct

import numpy as np
import pytest
from example_runs import epoch_log, run
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie.examples import common, mnist


def test_the_default_run_reaches_97_percent(capsys):
    accuracy, lines = run(capsys, "mnist", [])
    assert accuracy >= 0.97
    assert len(epoch_log(lines)) == 30
    assert lines[-1] == f"test accuracy: {accuracy:.1%}"


def test_digits_split_is_fixed_and_disjoint():
    (train, test), (again, _) = common.digits(), common.digits()
    assert len(train["label"]) == 1437 and len(test["label"]) == 360
    np.testing.assert_array_equal(train["image"], again["image"])
    assert train["image"].dtype == np.float32
    assert train["image"].min() == 0 and train["image"].max() == 1
    rows = {x.tobytes() for x in train["image"]}
    assert sum(x.tobytes() in rows for x in test["image"]) < 5  # a few digits are repeated
    assert set(train["label"]) == set(test["label"]) == set(range(10))


def write_idx(path, array, compress=False):
    data = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def fake_mnist(n_train=64, n_test=16, seed=0):
    rng = np.random.default_rng(seed)
    x_train, x_test = (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for n in (n_train, n_test))
    y_train, y_test = (rng.integers(0, 10, n, dtype=np.uint8) for n in (n_train, n_test))
    return x_train, y_train, x_test, y_test


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_idx_files(tmp_path, compress):
    arrays = fake_mnist()
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    names += ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    for name, array in zip(names, arrays, strict=True):
        write_idx(tmp_path / (name + (".gz" if compress else "")), array, compress)
    train, test = common.mnist(tmp_path)
    assert train["image"].shape == (64, 28, 28, 1) and test["image"].shape == (16, 28, 28, 1)
    np.testing.assert_allclose(train["image"][..., 0], arrays[0] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(test["label"], arrays[3])
    assert train["label"].dtype == np.int32


def test_mnist_reads_npz(tmp_path):
    x_train, y_train, x_test, y_test = fake_mnist()
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    train, test = common.mnist(tmp_path)
    np.testing.assert_allclose(test["image"][..., 0], x_test / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(train["label"], y_train)


def test_mnist_loader_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("found neither train-images-idx3-ubyte")):
        common.mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 12)
    with pytest.raises(ValueError, match="not an IDX file of unsigned bytes \\(header 00000d03\\)"):
        common._read_idx(tmp_path / "train-images-idx3-ubyte")
    write_idx(tmp_path / "short", np.zeros((2, 3), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"header says shape \(2, 3\), file holds 5 bytes"):
        common._read_idx(tmp_path / "short")


def test_main_trains_on_real_mnist_files(capsys, tmp_path):
    x_train, y_train, x_test, y_test = fake_mnist()
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    argv = ["--data-dir", str(tmp_path), "--epochs", "1", "--batch-size", "16"]
    accuracy, lines = run(capsys, "mnist", argv)
    assert 0 <= accuracy <= 1 and accuracy * 16 == round(accuracy * 16)  # 16 test images
    assert lines[-1] == f"test accuracy: {accuracy:.1%}"


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 3), st.integers(0, 2), st.integers(0, 2**32 - 1))
def test_shift_moves_each_image_by_at_most_the_given_pixels(n, pixels, seed):
    images = np.random.default_rng(seed).random((n + 1, 5, 6, 1)).astype(np.float32)
    shifted = mnist.shift(images, np.random.default_rng(seed), pixels)
    assert shifted.shape == images.shape and shifted.dtype == images.dtype
    for before, after in zip(images, shifted, strict=True):
        candidates = []
        for dy in range(-pixels, pixels + 1):
            for dx in range(-pixels, pixels + 1):
                moved = np.zeros_like(before)  # ``before`` moved down dy and right dx
                top, left = max(0, dy), max(0, dx)
                src = before[max(0, -dy) : 5 - top, max(0, -dx) : 6 - left]
                moved[top : top + src.shape[0], left : left + src.shape[1]] = src
                candidates.append(np.array_equal(moved, after))
        assert any(candidates)


def test_batches_depend_only_on_seed_and_epoch():
    a = common.batches(103, 10, seed=3, epoch=2)
    assert len(a) == 10 and all(len(b) == 10 for b in a)
    assert len(set(np.concatenate(a).tolist())) == 100
    np.testing.assert_array_equal(np.stack(a), np.stack(common.batches(103, 10, seed=3, epoch=2)))
    assert not np.array_equal(np.stack(a), np.stack(common.batches(103, 10, seed=3, epoch=3)))
