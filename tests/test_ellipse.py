"""Tests for fetalhead.ellipse: fit on drawn ellipses, Ramanujan vs the exact perimeter,
challenge rows, Hadlock gestational age, bias estimation."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy.special import ellipe

from fetalhead.ellipse import (
    ANNOTATION_BIAS_MM,
    ANNOTATION_BIAS_PX,
    CENTRE_FIT_SHORTFALL_PX,
    HADLOCK_HC_RANGE_MM,
    MIN_SEMI_AXIS_PX,
    SUBMISSION_COLUMNS,
    Ellipse,
    annotation_bias_mm,
    challenge_row,
    ellipse_circumference,
    estimate_bias,
    fit_ellipse,
    fit_ellipse_points,
    gestational_age_weeks,
    hc_from_mask,
    prediction_bias_px,
)
from fetalhead.errors import FetalheadError

SHAPE = (540, 800)  # HC18 image size (H, W)


def draw_filled(cx, cy, a, b, angle_deg, shape=SHAPE, thickness=-1):
    """Independent rasteriser: cv2.ellipse with 8 fractional bits (1/256 px). It rounds the
    angle to whole degrees, so callers pass integer angles."""
    mask = np.zeros(shape, np.uint8)
    f = 256
    cv2.ellipse(
        mask,
        (round(cx * f), round(cy * f)),
        (round(a * f), round(b * f)),
        angle_deg,
        0,
        360,
        1,
        thickness,
        cv2.LINE_8,
        8,
    )
    return mask


def angle_diff_deg(x, y):
    """Difference of two axis directions (period 180 degrees), in (-90, 90]."""
    return (x - y + 90.0) % 180.0 - 90.0


def random_ellipses(n, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        a = rng.uniform(60, 240)
        b = a * rng.uniform(0.55, 0.8)  # eccentric enough for a well-defined angle
        yield (
            rng.uniform(a + 5, SHAPE[1] - a - 5),
            rng.uniform(min(a, 255), SHAPE[0] - min(a, 255)),
            a,
            b,
            float(rng.integers(0, 180)),
        )


def test_fit_recovers_drawn_ellipses():
    for cx, cy, a, b, deg in random_ellipses(40, seed=0):
        e = fit_ellipse(draw_filled(cx, cy, a, b, deg))
        assert e is not None
        assert abs(e.cx - cx) < 0.5 and abs(e.cy - cy) < 0.5
        assert abs(e.a - a) < 0.5 and abs(e.b - b) < 0.5
        assert abs(angle_diff_deg(math.degrees(e.angle_rad), deg)) < 0.5
        assert e.a >= e.b and 0 <= e.angle_rad < math.pi


def test_angles_a_hair_below_zero_wrap_to_zero_not_to_pi():
    for box in (((0, 0), (10, 5), -1e-15), ((0, 0), (5, 10), -90 - 1e-14), ((0, 0), (10, 5), -180.0)):
        angle = Ellipse.from_box(box).angle_rad
        assert 0 <= angle < math.pi and math.copysign(1.0, angle) == 1.0, (box, angle)


def test_fit_recovers_to_mask_at_fractional_angles():
    rng = np.random.default_rng(5)
    for cx, cy, a, b, _ in random_ellipses(20, seed=1):
        deg = rng.uniform(0, 180)
        e = fit_ellipse(Ellipse(cx, cy, a, b, math.radians(deg)).to_mask(SHAPE))
        assert abs(e.cx - cx) < 0.5 and abs(e.cy - cy) < 0.5
        assert abs(e.a - a) < 0.5 and abs(e.b - b) < 0.5
        assert abs(angle_diff_deg(math.degrees(e.angle_rad), deg)) < 0.5


def test_fit_on_pixel_centre_digitisation_is_half_a_pixel_short():
    # Documented behaviour: pixels whose centres are inside -> semi-axes ~0.46 px short.
    cx, cy, a, b, th = 401.3, 268.7, 210.0, 150.0, 0.7
    y, x = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]].astype(float)
    u = (x - cx) * math.cos(th) + (y - cy) * math.sin(th)
    v = -(x - cx) * math.sin(th) + (y - cy) * math.cos(th)
    e = fit_ellipse(((u / a) ** 2 + (v / b) ** 2 <= 1).astype(np.uint8))
    assert -0.6 < e.a - a < -0.3 and -0.6 < e.b - b < -0.3
    assert abs(e.cx - cx) < 0.1 and abs(e.angle_rad - th) < math.radians(0.2)


def test_the_centre_fit_shortfall_constant_is_what_the_fit_gives():
    """CENTRE_FIT_SHORTFALL_PX, the part of a predicted ellipse's bias in the frame's own pixels:
    the perimeter shortfall (over 2 pi) of fits to centre-digitised ellipses of HC18's sizes."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]].astype(float)
    short = []
    for _ in range(40):
        a = rng.uniform(60, 250)
        b, th = a * rng.uniform(0.6, 0.95), rng.uniform(0, math.pi)
        cx, cy = rng.uniform(350, 450), rng.uniform(240, 300)
        u = (x - cx) * math.cos(th) + (y - cy) * math.sin(th)
        v = -(x - cx) * math.sin(th) + (y - cy) * math.cos(th)
        e = fit_ellipse(((u / a) ** 2 + (v / b) ** 2 <= 1).astype(np.uint8))
        short.append((ellipse_circumference(a, b) - e.circumference) / (2 * math.pi))
    assert np.mean(short) == pytest.approx(CENTRE_FIT_SHORTFALL_PX, abs=0.01)
    assert prediction_bias_px(1.0) == pytest.approx(ANNOTATION_BIAS_PX)  # HC18's frames: as annotated
    t = ANNOTATION_BIAS_PX / (2 * math.pi)
    assert prediction_bias_px(2.0) == pytest.approx(2 * math.pi * (2 * t + CENTRE_FIT_SHORTFALL_PX))


def test_fit_accepts_bool_255_and_three_channels():
    m = draw_filled(400, 270, 200, 120, 25)
    ref = fit_ellipse(m)
    for variant in (m.astype(bool), m * 255, np.dstack([m * 255] * 3)):
        e = fit_ellipse(variant)
        assert e == pytest.approx(ref)


def test_fit_counts_a_head_in_any_channel():
    # nonzero in ANY channel is head: a mask drawn in the green channel of an RGB image
    m = draw_filled(400, 270, 200, 120, 25)
    rgb = np.zeros((*m.shape, 3), np.uint8)
    rgb[..., 1] = m * 255
    assert fit_ellipse(rgb) == pytest.approx(fit_ellipse(m))
    opaque = np.dstack([rgb, np.full(m.shape, 255, np.uint8)])  # an RGBA mask: its alpha is no head
    assert fit_ellipse(opaque) == pytest.approx(fit_ellipse(m))
    assert fit_ellipse(np.dstack([m * 255, np.full(m.shape, 255, np.uint8)])) == pytest.approx(fit_ellipse(m))


def test_fit_uses_largest_component():
    m = draw_filled(300, 270, 150, 100, 10)
    m[10:30, 700:720] = 1  # a small blob elsewhere must be ignored
    e = fit_ellipse(m)
    assert abs(e.cx - 300) < 0.5 and abs(e.a - 150) < 0.5


def test_fit_thin_outline():
    # Original Zenodo annotations are 1-px outlines: the fit lands on the ring's outer edge.
    e = fit_ellipse(draw_filled(400, 270, 200, 130, 60, thickness=1))
    assert e is not None
    assert abs(e.a - 200) < 1.0 and abs(e.b - 130) < 1.0


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros(SHAPE, np.uint8),
        np.zeros((0, 0), np.uint8),
        np.pad(np.ones((2, 2), np.uint8), 5),  # too few boundary points
        np.pad(np.ones((1, 60), np.uint8), 5),  # a line: degenerate conic
    ],
    ids=["empty", "zero-size", "tiny", "line"],
)
def test_no_head_gives_none_and_nan(mask):
    assert fit_ellipse(mask) is None
    assert math.isnan(hc_from_mask(mask, 0.1))


def test_fit_rejects_bad_rank():
    with pytest.raises(FetalheadError):
        fit_ellipse(np.zeros((2, 3, 4, 5), np.uint8))


@pytest.mark.parametrize("ratio", [1.0, 0.95, 0.9, 0.8, 0.7, 0.6])
def test_ramanujan_matches_exact_perimeter(ratio):
    a = 123.4
    b = a * ratio
    exact = 4 * a * ellipe(1 - (b / a) ** 2)  # scipy's parameter m = e^2
    assert ellipse_circumference(a, b) == pytest.approx(exact, rel=1e-6)
    assert ellipse_circumference(b, a) == pytest.approx(exact, rel=1e-6)  # symmetric


def test_ramanujan_error_grows_for_flat_ellipses():
    # Documented: ~4e-4 relative for a degenerate (flat) ellipse, perimeter 4a.
    assert ellipse_circumference(1.0, 0.0) == pytest.approx(4.0, rel=5e-4)
    assert abs(ellipse_circumference(1.0, 0.0) - 4.0) / 4.0 > 1e-4
    assert ellipse_circumference(0.0, 0.0) == 0.0


def test_hc_from_mask_in_mm_and_bias():
    a, b, px = 180.0, 130.0, 0.12
    m = draw_filled(400, 270, a, b, 35)
    expected = 4 * a * ellipe(1 - (b / a) ** 2) * px
    hc = hc_from_mask(m, px)
    assert hc == pytest.approx(expected, abs=2 * math.pi * 0.5 * px)  # within half a pixel
    assert hc_from_mask(m, px, bias_mm=1.5) == pytest.approx(hc - 1.5)


def test_ellipse_to_mm_and_to_mask_roundtrip():
    e = Ellipse(400.25, 270.5, 200.0, 120.0, math.radians(30))
    mm = e.to_mm(0.5)
    assert (mm.cx, mm.cy, mm.a, mm.b, mm.angle_rad) == (200.125, 135.25, 100.0, 60.0, e.angle_rad)
    assert mm.circumference == pytest.approx(0.5 * e.circumference)
    # cv2.ellipse uses a coarser polygon: the two fills differ only along the outline.
    diff = e.to_mask(SHAPE) != draw_filled(400.25, 270.5, 200, 120, 30)
    assert diff.sum() < 0.5 * e.circumference
    f = fit_ellipse(e.to_mask(SHAPE))
    assert f.cx == pytest.approx(e.cx, abs=0.5) and f.a == pytest.approx(e.a, abs=0.5)


def test_challenge_row_convention():
    # Major axis drawn vertically: a (semi-major) must point along +y, i.e. angle pi/2.
    m = draw_filled(300, 270, 120, 200, 0)  # cv2: first axis (120) along x, second along y
    row = challenge_row("001_HC.png", fit_ellipse(m), 0.1)
    assert tuple(row) == SUBMISSION_COLUMNS
    assert row["filename"] == "001_HC.png"
    assert row["center_x_mm"] == pytest.approx(30.0, abs=0.05)
    assert row["center_y_mm"] == pytest.approx(27.0, abs=0.05)
    assert row["semi_axes_a_mm"] == pytest.approx(20.0, abs=0.05)
    assert row["semi_axes_b_mm"] == pytest.approx(12.0, abs=0.05)
    assert row["angle_rad"] == pytest.approx(math.pi / 2, abs=math.radians(0.5))
    # The row redraws the same ellipse (in pixels) with cv2's convention.
    redraw = draw_filled(
        row["center_x_mm"] / 0.1,
        row["center_y_mm"] / 0.1,
        row["semi_axes_a_mm"] / 0.1,
        row["semi_axes_b_mm"] / 0.1,
        math.degrees(row["angle_rad"]),
    )
    assert (redraw != m).sum() < 0.01 * m.sum()


def test_challenge_row_no_head():
    row = challenge_row("002_HC.png", None, 0.1)
    assert row["filename"] == "002_HC.png"
    assert all(math.isnan(row[c]) for c in SUBMISSION_COLUMNS[1:])


@pytest.mark.parametrize("hc_mm", [50.0, 89.5, 175.0, 250.0, 340.0, 400.0])
def test_hadlock_formula(hc_mm):
    cm = hc_mm / 10
    weeks, in_range = gestational_age_weeks(hc_mm)
    assert weeks == pytest.approx(8.96 + 0.540 * cm + 0.0003 * cm**3)
    assert in_range == (HADLOCK_HC_RANGE_MM[0] <= hc_mm <= HADLOCK_HC_RANGE_MM[1])


def test_hadlock_range_inverts_14_and_42_weeks():
    lo, hi = HADLOCK_HC_RANGE_MM
    assert gestational_age_weeks(lo)[0] == pytest.approx(14.0, abs=0.01)
    assert gestational_age_weeks(hi)[0] == pytest.approx(42.0, abs=0.01)
    assert gestational_age_weeks(lo - 1)[1] is False
    assert gestational_age_weeks(hi + 1)[1] is False
    assert gestational_age_weeks(200.0)[1] is True
    weeks, ok = gestational_age_weeks(float("nan"))
    assert math.isnan(weeks) and ok is False


def test_hadlock_range_ends_are_in_range():
    lo, hi = HADLOCK_HC_RANGE_MM
    assert gestational_age_weeks(lo)[1] is True and gestational_age_weeks(hi)[1] is True


def test_estimate_bias_recovers_planted_models():
    rng = np.random.default_rng(1)
    px = rng.uniform(0.05, 0.4, 500)
    ref = rng.uniform(50, 350, 500)
    measured = ref + 6.0 * px + rng.normal(0, 0.01, 500)
    assert estimate_bias(measured, ref, px, model="per_pixel") == pytest.approx(6.0, abs=0.05)
    measured_add = ref + 0.8 + rng.normal(0, 0.01, 500)
    assert estimate_bias(measured_add, ref, model="additive") == pytest.approx(0.8, abs=0.01)
    measured_add[:3] = np.nan  # failed fits are ignored
    assert estimate_bias(measured_add, ref, model="additive") == pytest.approx(0.8, abs=0.01)


def test_estimate_bias_errors():
    with pytest.raises(FetalheadError):
        estimate_bias([1.0], [1.0], model="per_pixel")  # needs pixel sizes
    with pytest.raises(FetalheadError):
        estimate_bias([1.0], [1.0], [0.1], model="nope")


def test_annotation_bias_constants_are_consistent():
    # Per-pixel bias times the median HC18 pixel size (0.128 mm) is close to the additive one.
    assert annotation_bias_mm(0.128) == pytest.approx(ANNOTATION_BIAS_MM, rel=0.1)
    assert 4.5 < ANNOTATION_BIAS_PX < 7.5  # a line of ~1.5-2 px: 2*pi*(width/2)


def test_fit_ellipse_points_recovers_the_curve_and_refuses_too_few_or_degenerate_points():
    t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    a, b, th = 150.0, 90.0, 0.4
    x = 400 + a * np.cos(t) * np.cos(th) - b * np.sin(t) * np.sin(th)
    y = 270 + a * np.cos(t) * np.sin(th) + b * np.sin(t) * np.cos(th)
    e = fit_ellipse_points(np.stack([x, y], axis=1), SHAPE)
    assert (e.cx, e.cy, e.a, e.b, e.angle_rad) == pytest.approx((400, 270, a, b, th), abs=1e-3)
    assert fit_ellipse_points(np.stack([x, y], axis=1)[:9], SHAPE) is None  # fewer than 10 points
    line = np.stack([np.arange(30.0), 2 * np.arange(30.0)], axis=1)
    assert fit_ellipse_points(line, SHAPE) is None  # collinear: no head


@pytest.mark.parametrize("b,is_head", [(0.7, False), (0.9, False), (1.2, True), (3.0, True)])
def test_fit_ellipse_points_refuses_a_semi_minor_axis_below_the_minimum(b, is_head):
    # MIN_SEMI_AXIS_PX is a SEMI-axis: a flat ellipse with b below it is a line, not a head
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    points = np.stack([400 + 100 * np.cos(t), 270 + b * np.sin(t)], axis=1)
    e = fit_ellipse_points(points, SHAPE)
    assert (e is not None) == is_head == (b >= MIN_SEMI_AXIS_PX)
    if is_head:
        assert e.b == pytest.approx(b, abs=0.05)
