"""Ellipse metrics (how HC18 scores a submission), the exam-level bootstrap, and evaluation
that scores every image of a part. Oracles are independent: closed forms, SciPy's
directed_hausdorff on dense samples, and pixel counting."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.distance import directed_hausdorff
from test_evaluate import MapPredictor

from fetalhead.ellipse import (
    ANNOTATION_BIAS_PX,
    Ellipse,
    distance_to_ellipse,
    ellipse_dice,
    ellipse_hausdorff_px,
    ellipse_points,
    head_ellipse,
)
from fetalhead.evaluate import EVAL_COLUMNS, bootstrap_ci, evaluate_split, summary_table


def test_hausdorff_of_circles_is_the_closed_form():
    a = Ellipse(100.0, 80.0, 40.0, 40.0, 0.0)
    assert ellipse_hausdorff_px(a, Ellipse(100.0, 80.0, 43.0, 43.0, 0.0)) == pytest.approx(3.0, abs=0.01)
    assert ellipse_hausdorff_px(a, Ellipse(105.0, 80.0, 40.0, 40.0, 0.0)) == pytest.approx(5.0, abs=0.01)
    assert ellipse_hausdorff_px(a, a) == pytest.approx(0.0, abs=0.01)


@pytest.mark.parametrize("seed", range(4))
def test_hausdorff_matches_scipy_on_dense_samples(seed):
    rng = np.random.default_rng(seed)

    def random_ellipse() -> Ellipse:
        a = rng.uniform(60, 200)
        return Ellipse(rng.uniform(300, 500), rng.uniform(200, 340), a, a * rng.uniform(0.6, 1.0),
                       rng.uniform(0, math.pi))

    e1, e2 = random_ellipse(), random_ellipse()
    if seed % 2:  # a near miss, as a good prediction is
        e2 = Ellipse(e1.cx + 2.0, e1.cy - 1.0, e1.a + 3.0, e1.b - 1.0, e1.angle_rad + 0.03)
    p1, p2 = ellipse_points(e1, 100_000), ellipse_points(e2, 100_000)
    want = max(directed_hausdorff(p1, p2)[0], directed_hausdorff(p2, p1)[0])
    assert ellipse_hausdorff_px(e1, e2) == pytest.approx(want, abs=0.002)


@pytest.mark.parametrize(("a", "b", "angle"), [(120.0, 80.0, 0.4), (90.0, 90.0, 0.0), (150.0, 12.0, 2.0),
                                                (60.0, 100.0, 1.0)])
def test_distance_to_ellipse_matches_the_nearest_of_dense_curve_points(a, b, angle):
    e = Ellipse(400.0, 270.0, a, b, angle)
    rng = np.random.default_rng(0)
    c, s = math.cos(angle), math.sin(angle)
    along = np.array([[c, s]]) * rng.uniform(-200, 200, (50, 1))  # on the a axis, centre included
    across = np.array([[-s, c]]) * rng.uniform(-200, 200, (50, 1))  # on the b axis
    points = np.concatenate([rng.uniform([150, 20], [650, 520], (400, 2)), ellipse_points(e, 50),
                             np.array([[e.cx, e.cy]]) + np.concatenate([along, across, [[0.0, 0.0]]])])
    want, _ = cKDTree(ellipse_points(e, 400_000)).query(points)  # samples 0.003 px apart or closer
    got = distance_to_ellipse(points, e)
    assert got.shape == (len(points),)
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_ellipse_dice_matches_the_pixel_count_of_the_overlap():
    shape = (540, 800)
    e1 = Ellipse(400.0, 270.0, 200.0, 150.0, 0.3)
    e2 = Ellipse(410.0, 265.0, 190.0, 150.0, 0.5)
    m1, m2 = e1.to_mask(shape).astype(bool), e2.to_mask(shape).astype(bool)
    want = 2 * (m1 & m2).sum() / (m1.sum() + m2.sum())
    assert ellipse_dice(e1, e2, shape) == pytest.approx(want)
    assert ellipse_dice(e1, e1, shape) == 1.0
    # concentric circles r and r + d: Dice -> 2 r^2 / (r^2 + (r + d)^2), up to rasterisation
    c1, c2 = Ellipse(400.0, 270.0, 100.0, 100.0, 0.0), Ellipse(400.0, 270.0, 110.0, 110.0, 0.0)
    assert ellipse_dice(c1, c2, shape) == pytest.approx(2 * 100**2 / (100**2 + 110**2), abs=0.01)


def test_head_ellipse_is_a_parallel_curve_bias_px_shorter():
    e = Ellipse(400.0, 270.0, 180.0, 170.0, 1.0)
    h = head_ellipse(e)
    assert (h.cx, h.cy, h.angle_rad) == (e.cx, e.cy, e.angle_rad)
    # for a near-circle the perimeter shrinks by 2 pi t = ANNOTATION_BIAS_PX
    assert e.circumference - h.circumference == pytest.approx(ANNOTATION_BIAS_PX, rel=1e-3)
    assert ellipse_hausdorff_px(e, h) == pytest.approx(ANNOTATION_BIAS_PX / (2 * math.pi), abs=0.02)


# ----------------------------------------------------------------------------- exam bootstrap


def test_group_bootstrap_with_one_value_per_group_is_the_plain_one():
    v = np.random.default_rng(0).normal(size=50)
    assert bootstrap_ci(v, groups=np.arange(50), seed=3) == pytest.approx(bootstrap_ci(v, seed=3))


def test_group_bootstrap_is_wider_when_frames_of_an_exam_agree():
    # 40 exams, 3 identical frames each: really 40 observations, not 120
    rng = np.random.default_rng(1)
    per_exam = rng.normal(size=40)
    v, exams = np.repeat(per_exam, 3), np.repeat(np.arange(40), 3)
    lo_i, hi_i = bootstrap_ci(v)
    lo_e, hi_e = bootstrap_ci(v, groups=exams)
    assert (hi_e - lo_e) > 1.5 * (hi_i - lo_i)
    # and the exam interval is the one of 40 independent values
    lo_40, hi_40 = bootstrap_ci(per_exam)
    assert (hi_e - lo_e) == pytest.approx(hi_40 - lo_40, rel=0.15)


def test_group_bootstrap_weights_exams_by_their_frames_and_drops_nans():
    v = np.array([1.0, 1.0, 1.0, 0.0, np.nan])
    g = np.array([1, 1, 1, 2, 3])
    lo, hi = bootstrap_ci(v, groups=g, n=4000)
    assert 0.0 <= lo < 0.75 < hi <= 1.0  # the image mean 0.75 sits inside
    assert bootstrap_ci([np.nan], groups=[1]) != bootstrap_ci([np.nan], groups=[1])  # (nan, nan)


def test_group_bootstrap_means_are_over_images_not_over_exam_means():
    # exam A: three frames of 1, exam B: one frame of 0. Resampling two exams gives AA (mean 1),
    # AB or BA (3 frames of 1 and one of 0: mean 0.75, half the time) or BB (0); the 30 % and
    # 70 % quantiles both fall in the 0.75 half. A mean of exam means would give 0.5 there.
    v = np.array([1.0, 1.0, 1.0, 0.0])
    g = np.array([1, 1, 1, 2])
    assert bootstrap_ci(v, groups=g, n=4000, alpha=0.6) == pytest.approx((0.75, 0.75))


# ----------------------------------------------------------------------------- whole part


def _perfect(root):
    from fetalhead.data import annotation_path, image_path, load_pair, read_training_csv

    names = list(read_training_csv(root)["filename"])
    pairs = [load_pair(image_path(n, root=root), annotation_path(n, root)) for n in names]
    return MapPredictor({hashlib.sha1(im.tobytes()).digest(): m for im, m in pairs})


@pytest.mark.parametrize("part", ["train", "val", "test"])
def test_every_image_of_the_part_is_scored_once(make_synthetic_hc18, part):
    from fetalhead.data import read_training_csv
    from fetalhead.split import load_split

    root = make_synthetic_hc18(size=(135, 200), per_part=3)
    split = load_split()
    here = set(read_training_csv(root)["filename"])
    want = sorted(n for n in split.loc[split["split"] == part, "filename"] if n in here)
    df = evaluate_split(_perfect(root), part, root=root, progress=False, batch_size=2)
    assert list(df.columns) == EVAL_COLUMNS
    assert list(df["filename"]) == want and len(want) >= 3
    assert (df["ellipse_dice"] == 1.0).all()
    assert (df["ellipse_hausdorff_mm"] < 0.15 * df["pixel_size_mm"]).all()  # the curves' sampling
    table = summary_table(df)
    assert table.at["dice", "n"] == len(want)
    assert table.at["dice", "n_exams"] == df["exam"].nunique()
