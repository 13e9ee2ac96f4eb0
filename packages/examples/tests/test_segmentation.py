"""segmentation: the synthetic shapes, the U-Net's shapes, the confusion matrix and IoU."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from ramie import nn
from ramie.examples import segmentation


def test_shapes_are_seeded_and_images_show_their_masks():
    data = segmentation.shapes(30, 32, np.random.default_rng(0))
    again = segmentation.shapes(30, 32, np.random.default_rng(0))
    np.testing.assert_array_equal(data["image"], again["image"])
    assert data["image"].shape == (30, 32, 32, 1) and data["label"].shape == (30, 32, 32)
    assert set(np.unique(data["label"])) == {0, 1, 2, 3}
    for image, mask in zip(data["image"], data["label"], strict=True):
        assert (mask > 0).any()  # at least one shape each
        noise = image[..., 0] - (mask > 0)
        assert abs(noise.std() - 0.3) < 0.05 and abs(noise.mean()) < 0.05


def test_a_circle_is_round_and_a_square_fills_its_box():
    data = segmentation.shapes(200, 32, np.random.default_rng(1))
    for kind, fill in ((1, np.pi / 4), (2, 1.0)):  # area over bounding box
        fills = []
        for mask in data["label"]:
            ys, xs = np.nonzero(mask == kind)
            if (
                len(ys)
                and (mask == kind).sum() > 20
                and not np.isin(mask, [k for k in (1, 2, 3) if k != kind]).any()
            ):
                box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
                fills.append(len(ys) / box)
        assert np.median(fills) == pytest.approx(fill, abs=0.12)


def test_unet_gives_logits_for_every_pixel():
    model = segmentation.UNet(4, 4, rngs=nn.Rngs(0))
    assert model(jnp.zeros((2, 16, 16, 1))).shape == (2, 16, 16, 4)
    assert model.up2.kernel.value.shape == (2, 2, 16, 8)  # ConvTranspose: 4w -> 2w channels
    assert model.decode2.layers[0].kernel.value.shape == (3, 3, 16, 8)  # upsampled + skip


def test_eval_step_counts_pixels_by_true_and_predicted_class():
    model = segmentation.UNet(4, 4, rngs=nn.Rngs(0))
    data = segmentation.shapes(3, 16, np.random.default_rng(2))
    metrics = nn.metrics.MultiMetric(
        loss=nn.metrics.Average("loss"), pixel_accuracy=nn.metrics.Accuracy()
    )
    confusion = np.asarray(segmentation.eval_step(model, metrics, data["image"], data["label"]))
    assert confusion.shape == (4, 4) and confusion.sum() == 3 * 16 * 16
    np.testing.assert_array_equal(confusion.sum(1), np.bincount(data["label"].ravel(), minlength=4))
    predicted = np.asarray(model(data["image"]).argmax(-1))
    np.testing.assert_array_equal(confusion.sum(0), np.bincount(predicted.ravel(), minlength=4))
    accuracy = float(metrics.compute()["pixel_accuracy"])
    assert accuracy == pytest.approx(np.trace(confusion) / confusion.sum(), abs=1e-6)


def test_mean_iou():
    assert segmentation.mean_iou(np.diag([5, 3, 2, 1])) == 1.0
    confusion = np.array([[6, 2], [0, 2]])  # class 0: 6 / 8; class 1: 2 / 4
    assert segmentation.mean_iou(confusion) == pytest.approx((6 / 8 + 2 / 4) / 2)
    assert segmentation.mean_iou(np.array([[4, 0], [0, 0]])) == pytest.approx(0.5)
