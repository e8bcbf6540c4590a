"""Tests for fetalhead.metrics: hand-made cases, SciPy and brute-force oracles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage
from scipy.spatial.distance import cdist, directed_hausdorff

from fetalhead.errors import FetalheadError
from fetalhead.metrics import (
    METRICS,
    assd_mm,
    boundary,
    dice,
    dice_batch,
    hausdorff_mm,
    iou,
    pixel_accuracy,
    score_pair,
    summarize,
)

CROSS = ndimage.generate_binary_structure(2, 1)


def oracle_boundary_points(mask):
    """Boundary by SciPy erosion (pixels outside the image are background): (N, 2) rows, cols."""
    m = mask.astype(bool)
    edge = m & ~ndimage.binary_erosion(m, structure=CROSS, border_value=0)
    return np.argwhere(edge).astype(float)


def random_blob(rng, shape=(60, 80)):
    """A random smooth shape: thresholded, smoothed noise (several components, holes)."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=rng.uniform(3, 6))
    return (noise > rng.uniform(0.0, 0.05)).astype(np.uint8)


def square(shape, top, left, size):
    m = np.zeros(shape, np.uint8)
    m[top : top + size, left : left + size] = 1
    return m


def test_dice_iou_accuracy_hand_made():
    a = square((10, 10), 0, 0, 4)  # 16 px
    b = square((10, 10), 2, 0, 4)  # 16 px, overlap rows 2-3: 8 px
    assert dice(a, b) == pytest.approx(2 * 8 / 32)
    assert iou(a, b) == pytest.approx(8 / 24)
    assert pixel_accuracy(a, b) == pytest.approx(1 - 16 / 100)
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0 and pixel_accuracy(a, a) == 1.0


def test_empty_conventions():
    empty = np.zeros((8, 8), np.uint8)
    full = square((8, 8), 2, 2, 3)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert pixel_accuracy(empty, empty) == 1.0
    assert hausdorff_mm(empty, empty, 0.1) == 0.0 and assd_mm(empty, empty, 0.1) == 0.0
    assert dice(empty, full) == 0.0 and iou(full, empty) == 0.0
    assert math.isnan(hausdorff_mm(empty, full, 0.1))
    assert math.isnan(assd_mm(full, empty, 0.1))


def test_boundary_hand_made():
    m = square((7, 7), 1, 1, 5)
    b = boundary(m)
    assert b.sum() == 16  # ring of a 5 x 5 square
    assert not b[3, 3] and b[1, 1] and b[5, 3]
    # A shape touching the image edge has its surface there.
    full = np.ones((4, 5), np.uint8)
    assert boundary(full).sum() == 4 * 5 - 2 * 3


def test_hausdorff_and_assd_hand_made():
    a = square((20, 20), 2, 2, 5)
    b = square((20, 20), 2, 5, 5)  # shifted 3 columns right
    px = 0.2
    # Farthest boundary pixel: a's left column (col 2) to b's nearest boundary pixel (col 5).
    assert hausdorff_mm(a, b, px) == pytest.approx(3 * px)
    assert hausdorff_mm(b, a, px) == pytest.approx(3 * px)
    assert hausdorff_mm(a, a, px) == 0.0 and assd_mm(a, a, px) == 0.0
    for bad in (-0.2, 0.0, float("nan")):
        for distance in (hausdorff_mm, assd_mm):
            with pytest.raises(FetalheadError, match="must be positive|not a finite number"):
                distance(a, b, bad)


@pytest.mark.parametrize("seed", range(6))
def test_hausdorff_vs_scipy(seed):
    rng = np.random.default_rng(seed)
    a, b = random_blob(rng), random_blob(rng)
    if not a.any() or not b.any():
        pytest.skip("empty random shape")
    pa, pb = oracle_boundary_points(a), oracle_boundary_points(b)
    expected = max(directed_hausdorff(pa, pb)[0], directed_hausdorff(pb, pa)[0])
    px = rng.uniform(0.05, 0.3)
    assert hausdorff_mm(a, b, px) == pytest.approx(expected * px, rel=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_assd_vs_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    a, b = random_blob(rng), random_blob(rng)
    if not a.any() or not b.any():
        pytest.skip("empty random shape")
    pa, pb = oracle_boundary_points(a), oracle_boundary_points(b)
    d = cdist(pa, pb)
    expected = (d.min(axis=1).sum() + d.min(axis=0).sum()) / (len(pa) + len(pb))
    px = rng.uniform(0.05, 0.3)
    assert assd_mm(a, b, px) == pytest.approx(expected * px, rel=1e-5)


def test_score_pair_and_shape_check():
    a = square((30, 40), 5, 5, 10)
    b = square((30, 40), 6, 7, 10)
    scores = score_pair(a, b, 0.1)
    assert tuple(scores) == METRICS
    assert scores["dice"] == pytest.approx(dice(a, b))
    assert scores["hausdorff_mm"] == pytest.approx(hausdorff_mm(a, b, 0.1))
    with pytest.raises(FetalheadError, match="original image size"):
        score_pair(a, np.zeros((15, 20), np.uint8), 0.1)
    with pytest.raises(FetalheadError):
        dice(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))


def test_summarize():
    df = pd.DataFrame(
        {
            "filename": ["a", "b", "c", "d"],
            "dice": [0.9, 0.8, 1.0, 0.7],
            "hausdorff_mm": [1.0, 2.0, np.nan, 4.0],
        }
    )
    s = summarize(df)
    assert list(s.index) == ["dice", "hausdorff_mm"]
    assert list(s.columns) == ["mean", "std", "median", "n"]
    assert s.loc["dice", "mean"] == pytest.approx(0.85)
    assert s.loc["dice", "std"] == pytest.approx(np.std([0.9, 0.8, 1.0, 0.7], ddof=1))
    assert s.loc["dice", "median"] == pytest.approx(0.85)
    assert s.loc["hausdorff_mm", "mean"] == pytest.approx(7 / 3)
    assert s.loc["hausdorff_mm", "n"] == 3
    other = summarize(pd.DataFrame({"hc_error_mm": [1.0, 3.0]}))
    assert other.loc["hc_error_mm", "median"] == 2.0


def test_dice_batch_matches_numpy_dice():
    rng = np.random.default_rng(7)
    masks_p = np.stack([random_blob(rng, (24, 32)) for _ in range(4)])
    masks_t = np.stack([random_blob(rng, (24, 32)) for _ in range(4)])
    masks_p[3] = 0
    masks_t[3] = 0  # both empty -> 1
    logits = torch.from_numpy(masks_p).float()[:, None] * 8 - 4  # +-4 logits
    target = torch.from_numpy(masks_t).float()[:, None]
    out = dice_batch(logits, target)
    assert out.shape == (4,)
    expected = [dice(p, t) for p, t in zip(masks_p, masks_t, strict=True)]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    probs = torch.sigmoid(logits)
    np.testing.assert_allclose(dice_batch(probs, target, from_logits=False).numpy(), expected)
    assert out[3] == 1.0


def test_dice_batch_thresholds_the_sigmoid_strictly():
    # Logits +-0.3 are probabilities 0.574 / 0.426: head / background, though both are < 0.5
    # as raw numbers. A probability of exactly 0.5 is not head (`predict.measure`: prob > 0.5).
    target = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])
    logits = torch.tensor([[[0.3, 0.3, -0.3, -0.3]]])
    assert dice_batch(logits, target).item() == pytest.approx(1.0)
    at_threshold = torch.tensor([[[0.5, 0.5, 0.5, 0.5]]])
    assert dice_batch(at_threshold, target, from_logits=False).item() == 0.0  # all background
    assert dice_batch(torch.zeros(1, 1, 4), target).item() == 0.0  # logit 0 = probability 0.5
