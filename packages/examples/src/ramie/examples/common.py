"""What every example shares, and nothing more: data, the progress bar, the epoch log, the plot.

Copy this file along with the example you fork. It knows nothing about models
or training; each example keeps its model, loss, train step and checkpoints
in plain view.

>>> train, test = digits()
>>> train["image"].shape, test["image"].shape, train["label"].dtype
((1437, 8, 8, 1), (360, 8, 8, 1), dtype('int32'))
>>> [len(b) for b in batches(10, 4, seed=0, epoch=0)]
[4, 4]
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

#: A split of a data set: ``{"image": (N, H, W, C) float32, "label": (N,) int32}``.
Dataset = dict[str, np.ndarray]  # {"image": (N, H, W, 1) float32 in [0, 1], "label": (N,) int32}

#: The seed of every train/test split, fixed so each run sees the same test set.
SPLIT_SEED = 0  # the train/test split never depends on --seed: every run sees the same test set
#: The message printed when ``--plot`` is given but matplotlib is not installed.
PLOT_MISSING = (
    "--plot: matplotlib is not installed; pip install 'ramie-examples[plot]' to get {path}"
)


def digits(test_size: int = 360) -> tuple[Dataset, Dataset]:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images), split train/test once."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)[..., None]
    labels = data.target.astype(np.int32)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    test, train = order[:test_size], order[test_size:]
    return (
        {"image": images[train], "label": labels[train]},
        {"image": images[test], "label": labels[test]},
    )


def _read_idx(path: Path) -> np.ndarray:
    """One IDX file (``*-ubyte`` or ``*-ubyte.gz``) of unsigned bytes, as an array."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (header {raw[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != np.prod(shape):
        raise ValueError(f"{path}: header says shape {shape}, file holds {data.size} bytes")
    return data.reshape(shape)


def _find(data_dir: Path, stem: str) -> Path:
    for path in (data_dir / stem, data_dir / f"{stem}.gz"):
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"--data-dir {data_dir}: found neither {stem} nor {stem}.gz; "
        "give a folder holding the four MNIST IDX files or mnist.npz"
    )


def mnist(data_dir: str | Path) -> tuple[Dataset, Dataset]:
    """Real MNIST from a local copy: the four IDX files or ``mnist.npz`` (keras's keys)."""
    data_dir = Path(data_dir)
    if (data_dir / "mnist.npz").is_file():
        with np.load(data_dir / "mnist.npz", allow_pickle=False) as npz:
            parts = [npz[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    else:
        stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
        stems += ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
        parts = [_read_idx(_find(data_dir, stem)) for stem in stems]
    x_train, y_train, x_test, y_test = parts
    return (
        {
            "image": (x_train / 255.0).astype(np.float32)[..., None],
            "label": y_train.astype(np.int32),
        },
        {"image": (x_test / 255.0).astype(np.float32)[..., None], "label": y_test.astype(np.int32)},
    )


def cifar10(data_dir: str | Path) -> tuple[Dataset, Dataset]:
    """CIFAR-10 from its binary batches (``data_batch_*.bin`` and ``test_batch.bin``).

    Each record is one label byte then 3,072 pixel bytes, channel by channel (3x32x32).
    """
    data_dir = Path(data_dir)
    train_files = sorted(data_dir.glob("data_batch_*.bin"))
    if not train_files or not (data_dir / "test_batch.bin").is_file():
        raise FileNotFoundError(
            f"--data-dir {data_dir}: found no data_batch_*.bin or no test_batch.bin; "
            "give the folder cifar-10-batches-bin of the CIFAR-10 binary version"
        )

    def read(paths: list[Path]) -> Dataset:
        raw = b"".join(path.read_bytes() for path in paths)
        if len(raw) % 3073:
            raise ValueError(
                f"{paths[0].parent}: {len(raw)} bytes is not a whole number of records"
            )
        records = np.frombuffer(raw, np.uint8).reshape(-1, 3073)
        images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return {
            "image": (images / 255.0).astype(np.float32),
            "label": records[:, 0].astype(np.int32),
        }

    return read(train_files), read([data_dir / "test_batch.bin"])


def batches(n: int, batch_size: int, *, seed: int, epoch: int) -> list[np.ndarray]:
    """The shuffled index batches of one epoch (the incomplete last batch is dropped).

    The order depends only on ``(seed, epoch)``, so a resumed run sees the same batches.
    """
    order = np.random.default_rng([seed, epoch]).permutation(n)
    steps = n // batch_size
    return list(order[: steps * batch_size].reshape(steps, batch_size))


def progress(items: Sequence, epoch: int, epochs: int) -> tqdm:
    """A tqdm bar over one epoch; ``bar.set_postfix(loss=..., refresh=False)`` shows the loss.

    ``refresh=False``: the bar redraws on its own schedule, with the right step count.
    """
    bar = f"epoch {epoch}/{epochs}"
    return tqdm(items, bar, leave=False, dynamic_ncols=True, miniters=1, mininterval=0.1)


def log_epoch(epoch: int, metrics: Mapping[str, float]) -> None:
    """Print one line for an epoch: ``epoch 3  train_loss 0.1234  test_accuracy 97.50%``."""
    parts = [f"epoch {epoch:3d}"]
    for name, value in metrics.items():
        parts.append(f"{name} {value:.2%}" if "accuracy" in name else f"{name} {value:.4f}")
    print("  ".join(parts), flush=True)


def plot(history: Iterable[Mapping[str, float]], path: str | Path, title: str) -> None:
    """Write the curves of ``history`` (one dict per epoch) to a PNG; without matplotlib, say so."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(PLOT_MISSING.format(path=path), flush=True)
        return
    history = list(history)
    epochs = range(1, len(history) + 1)
    names = list(history[0]) if history else []
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in names:
        axis = right if "accuracy" in name else left
        axis.plot(epochs, [row[name] for row in history], marker="o", label=name)
    left.set(xlabel="epoch", ylabel="loss", title=title)
    right.set(xlabel="epoch", ylabel="accuracy")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"plot written to {Path(path).resolve()}", flush=True)


def image_grid(rows: Mapping[str, np.ndarray], path: str | Path, title: str) -> None:
    """Write images to a PNG, one labelled row per entry of ``rows`` ((N, H, W, 1) each)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(PLOT_MISSING.format(path=path), flush=True)
        return
    columns = max(len(images) for images in rows.values())
    fig, axes = plt.subplots(len(rows), columns, figsize=(columns, len(rows) + 0.5), squeeze=False)
    for axis_row, (name, images) in zip(axes, rows.items(), strict=True):
        axis_row[0].set_title(name, loc="left", fontsize=9)
        for axis, image in zip(axis_row, images, strict=False):
            axis.imshow(image[..., 0], cmap="gray_r", vmin=0, vmax=1)
        for axis in axis_row:
            axis.axis("off")
    fig.suptitle(title)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"images written to {Path(path).resolve()}", flush=True)


def beside(path: str | Path, suffix: str) -> Path:
    """``curves.png`` -> ``curves-samples.png``: a second picture next to the --plot one."""
    path = Path(path)
    return path.with_name(f"{path.stem}-{suffix}{path.suffix}")


__all__ = [
    "PLOT_MISSING",
    "SPLIT_SEED",
    "Dataset",
    "batches",
    "beside",
    "cifar10",
    "digits",
    "image_grid",
    "log_epoch",
    "mnist",
    "plot",
    "progress",
]
