"""Tests for fetalhead.synthetic: shapes and dtypes, masks that are the drawn ellipses (closed-form
area, least-squares fit), bright heads, seeds that reproduce, an HC18 folder the readers accept."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from fetalhead.cache import META_COLUMNS
from fetalhead.ellipse import Ellipse, fit_ellipse
from fetalhead.synthetic import (
    SYNTH_SIZE,
    draw_head,
    head_image,
    random_box,
    soft_probability,
    synthetic_cases,
    synthetic_set,
    write_synthetic_hc18,
)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


def test_synthetic_set_shapes_dtypes_and_meta():
    s = synthetic_set(5, (48, 80), seed=3, split="val")
    assert s.images.shape == s.masks.shape == (5, 48, 80)
    assert s.images.dtype == s.masks.dtype == np.uint8
    assert set(np.unique(s.masks)) == {0, 1}
    assert list(s.meta.columns) == META_COLUMNS and set(s.meta["split"]) == {"val"}
    assert s.meta["pixel_size_mm"].tolist() == pytest.approx([0.10, 0.11, 0.12, 0.13, 0.14])
    assert synthetic_set(2).images.shape[1:] == SYNTH_SIZE


def test_masks_are_the_drawn_ellipses_and_heads_are_bright():
    s = synthetic_set(6, (96, 144), seed=1)
    for image, mask, hc, px in zip(s.images, s.masks, s.meta["hc_mm"], s.meta["pixel_size_mm"],
                                   strict=True):
        fitted = fit_ellipse(mask)
        # closed forms: area pi a b (cv2 fills the outline pixels too: about half a pixel
        # more on each semi-axis) and the perimeter the metadata holds
        assert mask.sum() == pytest.approx(math.pi * (fitted.a + 0.5) * (fitted.b + 0.5), rel=0.05)
        assert fitted.circumference * px == pytest.approx(hc, rel=0.02)
        assert image[mask > 0].mean() - image[mask == 0].mean() == pytest.approx(80, abs=5)
        ys, xs = np.nonzero(mask)  # inside the image, near its centre
        assert 0 < ys.min() and ys.max() < 95 and 0 < xs.min() and xs.max() < 143
        assert abs(xs.mean() - 71.5) < 5 and abs(ys.mean() - 47.5) < 5


def test_the_same_seed_gives_the_same_data():
    a, b, c = synthetic_set(3, seed=7), synthetic_set(3, seed=7), synthetic_set(3, seed=8)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert not np.array_equal(a.images, c.images)
    x, y = synthetic_cases(3, seed=2), synthetic_cases(3, seed=2)
    assert all(np.array_equal(p, q) for p, q in zip(x.probs, y.probs, strict=True))
    assert x.hc_true_mm == y.hc_true_mm


def test_one_drawing_for_boxes_masks_and_images():
    rng = np.random.default_rng(0)
    box = random_box(rng, (100, 150))
    e = Ellipse.from_box(box)
    assert e.a >= e.b and 0 <= e.angle_rad < math.pi
    filled, ring = draw_head(box, (100, 150)), draw_head(box, (100, 150), thickness=1)
    # the ring is the filled ellipse's edge, to a pixel
    near = cv2.dilate(filled, np.ones((3, 3), np.uint8))
    deep = cv2.erode(filled, np.ones((5, 5), np.uint8))
    assert ring.sum() < filled.sum() / 5 and not (ring & (1 - near)).any() and not (ring & deep).any()
    image = head_image(filled, np.random.default_rng(1))
    assert image.dtype == np.uint8 and image.shape == (100, 150)


def test_soft_probability_is_above_one_half_exactly_on_the_mask():
    mask = Ellipse(50.0, 40.0, 30.0, 20.0, 0.3).to_mask((80, 100))
    with np.errstate(over="raise"):  # far from the edge the logistic saturates without overflow
        prob = soft_probability(mask, edge_px=0.25)
    assert prob.dtype == np.float32 and 0.0 <= prob.min() and prob.max() <= 1.0
    assert np.array_equal(prob > 0.5, mask > 0)
    assert prob[40, 50] > 0.999 and prob[0, 0] < 0.001


def test_synthetic_cases_predictions_get_worse_and_the_last_has_a_blob():
    c = synthetic_cases(5, seed=0)
    assert len(c.images) == len(c.probs) == len(c.filenames) == 5
    assert all(p.dtype == np.float32 and p.shape == im.shape for p, im in zip(c.probs, c.images, strict=True))
    for truth, px, hc in zip(c.true_ellipses, c.pixel_sizes_mm, c.hc_true_mm, strict=True):
        assert hc == pytest.approx(truth.circumference * px) and 80 < hc < 360
    dices = [_dice(e.to_mask(m.shape), m) for e, m in zip(c.pred_ellipses, c.masks, strict=True)]
    assert dices[0] > dices[-1] and min(dices) > 0.8
    blobs = [int((p > 0.5).sum() - e.to_mask(p.shape).sum()) for p, e in zip(c.probs, c.pred_ellipses, strict=True)]
    assert blobs[:-1] == [0] * 4 and blobs[-1] > 0


@pytest.mark.parametrize("outline", [False, True])
def test_write_synthetic_hc18_is_read_by_the_data_module(tmp_path, outline):
    from fetalhead.data import TRAIN_DIR, load_mask, read_test_csv, read_training_csv

    root = write_synthetic_hc18(tmp_path / "hc18", size=(48, 72), n_challenge=2, outline=outline)
    train, test = read_training_csv(root), read_test_csv(root)
    assert len(test) == 2 and len(train) > 6
    for row in train.head(3).itertuples():
        mask = load_mask(root / TRAIN_DIR / row.filename.replace(".png", "_Annotation.png"))
        assert mask.shape == (48, 72) and set(np.unique(mask)) == {0, 1}
        fitted = fit_ellipse(mask)
        assert fitted.circumference * row.pixel_size_mm == pytest.approx(row.hc_mm, rel=0.03)
    again = write_synthetic_hc18(tmp_path / "again", size=(48, 72), n_challenge=2, outline=outline)
    first = train.iloc[0]["filename"]
    assert (root / TRAIN_DIR / first).read_bytes() == (again / TRAIN_DIR / first).read_bytes()
