"""Head diameters (BPD, OFD) and the cephalic index, on constructed ellipses and masks."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from fetalhead.biometry import (
    CEPHALIC_INDEX_RANGE,
    Diameters,
    diameter_errors,
    diameters,
    head_shape,
)
from fetalhead.ellipse import Ellipse, fit_ellipse, head_ellipse
from fetalhead.evaluate import DIAMETER_COLUMNS, ellipse_scores
from fetalhead.predict import measure


def _filled(shape, cx, cy, a, b, angle_deg):
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, (cx, cy), (a, b), angle_deg, 0, 360, 1, -1)
    return mask


def test_diameters_are_the_axes_and_the_index_their_ratio():
    d = diameters(Ellipse(cx=40.0, cy=30.0, a=50.0, b=40.0, angle_rad=1.0))
    assert (d.ofd_mm, d.bpd_mm) == (100.0, 80.0)
    assert d.cephalic_index == pytest.approx(80.0)
    assert d.head_shape == "normal"
    assert d.to_row() == {"bpd_mm": 80.0, "ofd_mm": 100.0, "cephalic_index": pytest.approx(80.0),
                          "head_shape": "normal"}
    circle = diameters(Ellipse(cx=0.0, cy=0.0, a=30.0, b=30.0, angle_rad=0.0))
    assert circle.cephalic_index == 100.0 and circle.head_shape == "brachycephalic"
    none = diameters(None)
    assert math.isnan(none.bpd_mm) and math.isnan(none.ofd_mm) and math.isnan(none.cephalic_index)
    assert none.head_shape == ""


def test_head_shape_follows_hadlocks_range():
    low, high = CEPHALIC_INDEX_RANGE
    assert (low, high) == (74.0, 83.0)
    assert head_shape(73.99) == "dolichocephalic"
    assert head_shape(low) == head_shape(78.3) == head_shape(high) == "normal"
    assert head_shape(83.01) == "brachycephalic"
    assert head_shape(float("nan")) == ""


def test_diameter_errors_are_pred_minus_reference():
    pred, ref = Diameters(bpd_mm=72.0, ofd_mm=95.0), Diameters(bpd_mm=70.0, ofd_mm=96.0)
    e = diameter_errors(pred, ref)
    assert set(e) == set(DIAMETER_COLUMNS)
    assert (e["bpd_error_mm"], e["bpd_abs_error_mm"], e["bpd_true_mm"]) == (2.0, 2.0, 70.0)
    assert (e["ofd_error_mm"], e["ofd_abs_error_mm"], e["ofd_true_mm"]) == (-1.0, 1.0, 96.0)
    assert e["cephalic_index_error"] == pytest.approx(100 * 72 / 95 - 100 * 70 / 96)
    assert e["cephalic_index_abs_error"] == pytest.approx(abs(e["cephalic_index_error"]))
    missed = diameter_errors(diameters(None), ref)
    assert math.isnan(missed["bpd_error_mm"]) and missed["bpd_true_mm"] == 70.0


def test_evaluation_scores_the_diameters_against_the_annotation_ellipse():
    px = 0.1
    gt = _filled((540, 800), 400, 270, 180, 140, 30)
    ref = head_ellipse(fit_ellipse(gt))
    same = ellipse_scores(ref, gt, px)
    assert same["bpd_error_mm"] == pytest.approx(0.0, abs=1e-9) and same["ofd_error_mm"] == pytest.approx(0.0, abs=1e-9)
    assert same["bpd_true_mm"] == pytest.approx(2 * ref.b * px) and same["ofd_true_mm"] == pytest.approx(2 * ref.a * px)
    assert same["bpd_true_mm"] == pytest.approx(28.0, abs=0.3)  # the drawn short axis, 2 x 140 px x 0.1 mm
    wider = ellipse_scores(Ellipse(ref.cx, ref.cy, ref.a, ref.b + 5.0, ref.angle_rad), gt, px)
    assert wider["bpd_error_mm"] == pytest.approx(1.0) and wider["ofd_error_mm"] == pytest.approx(0.0, abs=1e-9)
    assert wider["cephalic_index_error"] > 0
    missed = ellipse_scores(None, gt, px)
    assert math.isnan(missed["bpd_abs_error_mm"]) and missed["ellipse_dice"] == 0.0


def test_a_prediction_measures_the_drawn_heads_diameters():
    """A probability map of a filled ellipse 150 x 100 px (semi-axes) at 0.2 mm per pixel: BPD
    about 2 x 100 x 0.2 = 40 mm, OFD about 60 mm (the fit of a rasterised outline is within a
    pixel), cephalic index 66.7: a long, narrow head."""
    prob = _filled((540, 800), 380, 260, 150, 100, 10).astype(np.float32)
    pred = measure(prob, 0.2)
    d = pred.diameters
    assert d.bpd_mm == pytest.approx(40.0, abs=0.4) and d.ofd_mm == pytest.approx(60.0, abs=0.4)
    assert d.cephalic_index == pytest.approx(100 * 100 / 150, abs=1.0)
    assert d.head_shape == "dolichocephalic"
    row = pred.to_row()
    assert (row["bpd_mm"], row["ofd_mm"]) == (d.bpd_mm, d.ofd_mm)
    assert (row["bpd_mm"], row["ofd_mm"]) == (2 * row["semi_axes_b_mm"], 2 * row["semi_axes_a_mm"])
    empty = measure(np.zeros((540, 800), np.float32), 0.2)
    assert math.isnan(empty.to_row()["bpd_mm"]) and empty.to_row()["head_shape"] == ""


def _table():
    """An evaluation table's diameter columns for four images: the third's head was not found."""
    import pandas as pd

    return pd.DataFrame({"bpd_true_mm": [70.0, 60.0, 50.0, 80.0], "bpd_error_mm": [1.0, -2.0, np.nan, 0.5],
                         "bpd_abs_error_mm": [1.0, 2.0, np.nan, 0.5],
                         "ofd_true_mm": [90.0, 85.0, 70.0, 95.0], "ofd_error_mm": [-1.0, 0.0, np.nan, 0.0],
                         "ofd_abs_error_mm": [1.0, 0.0, np.nan, 0.0],
                         "cephalic_index_true": [77.8, 70.6, 71.4, 84.2],
                         "cephalic_index_error": [2.0, 4.5, np.nan, -3.0],
                         "cephalic_index_abs_error": [2.0, 4.5, np.nan, 3.0]})


def test_shape_agreement_counts_reference_against_predicted_shapes():
    from fetalhead.biometry import HEAD_SHAPES, shape_agreement

    t = shape_agreement(_table())
    assert list(t.index) == list(t.columns) == list(HEAD_SHAPES)
    assert t.to_numpy().sum() == 3  # the image without a head is left out
    assert t.loc["normal", "normal"] == 1  # 77.8 -> 79.8
    assert t.loc["dolichocephalic", "normal"] == 1  # 70.6 -> 75.1
    assert t.loc["brachycephalic", "normal"] == 1  # 84.2 -> 81.2
    assert t.loc["dolichocephalic", "dolichocephalic"] == 0


def test_diameter_plot_shows_each_measured_image():
    from fetalhead.report import diameter_plot

    fig = diameter_plot(_table())
    ax_mm, ax_ci = fig.axes
    bpd, ofd = ax_mm.collections
    np.testing.assert_allclose(np.asarray(bpd.get_offsets()), [[70, 1], [60, -2], [80, 0.5]])
    np.testing.assert_allclose(np.asarray(ofd.get_offsets()), [[90, -1], [85, 0], [95, 0]])
    (points,) = ax_ci.collections
    np.testing.assert_allclose(np.asarray(points.get_offsets()), [[77.8, 79.8], [70.6, 75.1], [84.2, 81.2]])
