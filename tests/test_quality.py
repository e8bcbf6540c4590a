"""Quality score: its ingredients on constructed cases. A clean ellipse scores well; two blobs,
a head cut by the image border, a blurred outline, an implausible HC and a mirrored pass that
disagrees score badly; the Predictor flags low scores for review."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from test_predict import EllipseLogits

from fetalhead.ellipse import Ellipse, fit_ellipse
from fetalhead.predict import STATUS_OK, STATUS_REVIEW, Predictor
from fetalhead.quality import (
    HC_PLAUSIBLE_MM,
    SCALES,
    mask_dice,
    quality,
    review_threshold,
    score_signals,
)

SHAPE = (270, 400)
HEAD = Ellipse(200.0, 135.0, 90.0, 70.0, 0.4)


def _case(mask: np.ndarray, prob: np.ndarray | None = None, hc_mm: float = 150.0, flip: float = math.nan,
          pixel_size_mm: float = 0.1):
    from fetalhead.predict import keep_largest_component

    prob = mask.astype(np.float32) if prob is None else prob
    fg = prob > 0.5
    largest = keep_largest_component(fg)
    return quality(prob, largest, fg, fit_ellipse(largest), hc_mm, pixel_size_mm, flip)


def _soft_head(steepness: float) -> np.ndarray:
    """float32 (H, W) probabilities of HEAD with a sigmoid edge (steep: sharp outline)."""
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    c, s = math.cos(HEAD.angle_rad), math.sin(HEAD.angle_rad)
    u = ((xx - HEAD.cx) * c + (yy - HEAD.cy) * s) / HEAD.a
    v = (-(xx - HEAD.cx) * s + (yy - HEAD.cy) * c) / HEAD.b
    r = np.sqrt(u**2 + v**2)
    return (1 / (1 + np.exp(-steepness * (1 - r)))).astype(np.float32)


def test_a_clean_ellipse_scores_well():
    q = _case(HEAD.to_mask(SHAPE))
    assert q.score == 1.0 and q.ellipse_iou > 0.97
    assert (q.one_component, q.border_contact, q.band_px, q.hc_band_mm) == (1.0, 0.0, 0.0, 0.0)
    assert math.isnan(q.flip_agreement)  # not computed: left out of the score


def test_two_blobs_score_badly():
    mask = HEAD.to_mask(SHAPE) | Ellipse(60.0, 60.0, 40.0, 35.0, 0.0).to_mask(SHAPE)
    q = _case(mask)
    assert q.one_component < 0.85 and q.score == 0.0


def test_a_head_cut_by_the_border_scores_badly():
    cut = Ellipse(330.0, 135.0, 110.0, 90.0, 0.0)  # a third of it lies right of the image
    q = _case(cut.to_mask(SHAPE))
    assert q.border_contact > 0.2 and q.score == 0.0


def test_a_ragged_mask_scores_badly():
    mask = HEAD.to_mask(SHAPE)
    mask[100:170, 150:250] = 0  # a bite out of the middle: not an ellipse any more
    q = _case(mask)
    assert q.ellipse_iou < 0.9 and q.score == 0.0


def test_a_blurred_outline_scores_badly():
    sharp = _case(HEAD.to_mask(SHAPE), _soft_head(200.0))
    blurred = _case(HEAD.to_mask(SHAPE), _soft_head(4.0))
    assert sharp.band_px < 2 and sharp.score == 1.0
    assert blurred.band_px > SCALES["band_px"][0] and blurred.score == 0.0  # about 40 px wide


def test_the_band_in_mm_of_hc_grows_with_the_pixel_size():
    # a band about 2.3 px wide: harmless at 0.1 mm per pixel, more than a gross HC error at 0.6
    prob = _soft_head(60.0)
    fine, coarse = (_case(HEAD.to_mask(SHAPE), prob, pixel_size_mm=px) for px in (0.1, 0.6))
    assert fine.band_px == coarse.band_px and 1.5 < fine.band_px < 3.0
    width_px = fine.band_px  # scale 1: image pixels = network pixels here
    assert fine.hc_band_mm == pytest.approx(2 * math.pi * width_px * 0.1)
    assert coarse.hc_band_mm == pytest.approx(6 * fine.hc_band_mm)
    assert fine.score == 1.0
    assert coarse.hc_band_mm > SCALES["hc_band_mm"][0] and coarse.score == 0.0


def test_an_implausible_hc_and_a_disagreeing_mirror_score_badly():
    mask = HEAD.to_mask(SHAPE)
    assert _case(mask, hc_mm=HC_PLAUSIBLE_MM[1] + 1).score == 0.0
    assert _case(mask, hc_mm=HC_PLAUSIBLE_MM[0] - 1).score == 0.0
    assert _case(mask, flip=0.7).score == 0.0
    bad, good = SCALES["flip_agreement"]
    assert _case(mask, flip=(bad + good) / 2).score == pytest.approx(0.5)


def test_score_signals_is_the_smallest_scaled_signal():
    good = dict(ellipse_iou=0.99, one_component=1.0, border_contact=0.0, band_px=1.0,
                hc_band_mm=1.0, flip_agreement=float("nan"), hc_mm=200.0)
    assert score_signals(**good) == 1.0
    for name, (bad, ok) in SCALES.items():
        half = {**good, name: (bad + ok) / 2}
        assert score_signals(**half) == pytest.approx(0.5), name
        assert score_signals(**{**good, name: bad}) == 0.0, name
    assert score_signals(**{name: float("nan") for name in SCALES}, hc_mm=200.0) == 0.0  # nothing known


def test_mask_dice():
    a = np.zeros((10, 10), bool)
    a[:5] = True
    assert mask_dice(a, a) == 1.0 and mask_dice(a, ~a) == 0.0 and mask_dice(a & False, a & False) == 1.0


def test_the_predictor_flags_low_scores_for_review():
    orig = (512, 768)
    head = Ellipse(cx=400.3, cy=250.7, a=180.0, b=120.0, angle_rad=0.6)
    image = np.random.default_rng(0).integers(0, 256, orig, dtype=np.uint8)  # not blank
    sharp = Predictor(EllipseLogits(head, orig, k=400.0), (128, 192), device="cpu")
    soft = Predictor(EllipseLogits(head, orig, k=4.0), (128, 192), device="cpu")
    p_sharp, p_soft = sharp.predict(image, 0.1), soft.predict(image, 0.1)
    assert p_sharp.status == STATUS_OK and p_sharp.quality.score >= sharp.review_below
    assert p_soft.status == STATUS_REVIEW and p_soft.quality.score < soft.review_below
    assert p_soft.hc_mm == pytest.approx(p_sharp.hc_mm, rel=0.02)  # still measured
    row = p_soft.to_row()
    assert row["status"] == "review" and row["quality"] == p_soft.quality.score and row["q_band_px"] == p_soft.quality.band_px
    # a mirrored pass that disagrees: a head that is not symmetric under the flip, with tta
    # (the fake ignores its input, so the mirrored pass sees the head mirrored: 87 px apart)
    off = Ellipse(cx=340.0, cy=250.0, a=120.0, b=100.0, angle_rad=0.0)
    tta = Predictor(EllipseLogits(off, orig, k=400.0), (128, 192), device="cpu", tta=True)
    p = tta.predict(image, 0.1)
    assert p.quality.flip_agreement < 0.8 and p.status == STATUS_REVIEW
    same = Predictor(EllipseLogits(head, orig, k=400.0), (128, 192), device="cpu", tta=True)
    assert same.predict(image, 0.1).quality.flip_agreement < 0.8  # this head is off-centre too
    centred = Ellipse(cx=383.5, cy=250.0, a=150.0, b=100.0, angle_rad=0.0)  # symmetric under the flip
    ok = Predictor(EllipseLogits(centred, orig, k=400.0), (128, 192), device="cpu", tta=True)
    assert ok.predict(image, 0.1).quality.flip_agreement > 0.98


# ----------------------------------------------------------------------------- the flag, measured


def _table():
    import pandas as pd

    # 10 images: 2 gross errors (one flagged, one not), one flagged fine image, one no head
    err = [0.5, 1.0, 1.5, 2.0, 0.8, 9.0, 7.0, 1.2, 0.3, float("nan")]
    status = ["ok", "ok", "review", "ok", "ok", "review", "ok", "ok", "ok", "no head found"]
    score = [0.99, 0.98, 0.5, 0.97, 0.96, 0.2, 0.95, 0.94, 0.93, float("nan")]
    return pd.DataFrame({"hc_abs_error_mm": err, "status": status, "quality": score, "exam": range(10)})


def test_flag_summary_counts_by_hand():
    from fetalhead.evaluate import flag_summary

    s = flag_summary(_table(), n_boot=200)
    assert (s["n_images"], s["n_review"], s["n_gross"], s["gross_caught"]) == (10, 2, 3, 2)
    assert s["fraction_set_aside"] == pytest.approx(0.3) and s["share_gross_caught"] == pytest.approx(2 / 3)
    kept = [0.5, 1.0, 2.0, 0.8, 7.0, 1.2, 0.3]
    assert s["hc_abs_error_mm_kept"] == pytest.approx(np.mean(kept))
    assert s["hc_abs_error_mm_oracle"] == pytest.approx(np.mean([0.3, 0.5, 0.8, 1.0, 1.2, 1.5, 2.0]))
    lo, hi = s["hc_abs_error_mm_kept_ci"]
    assert lo < s["hc_abs_error_mm_kept"] < hi


def test_risk_coverage_by_hand():
    from fetalhead.evaluate import risk_coverage

    curve = risk_coverage(_table())
    assert len(curve) == 9 and curve["coverage"].iloc[-1] == pytest.approx(0.9)  # no head: never kept
    # most confident first: 0.5 (0.99), then 1.0 (0.98)
    assert curve["hc_abs_error_mm"].iloc[1] == pytest.approx(0.75)
    assert (curve["oracle_hc_abs_error_mm"] <= curve["hc_abs_error_mm"] + 1e-12).all()
    assert curve["hc_abs_error_mm"].iloc[-1] == pytest.approx(curve["oracle_hc_abs_error_mm"].iloc[-1])


def test_review_threshold_is_the_largest_that_flags_at_most_the_share():
    scores = pd.Series(np.arange(100) / 100.0)
    t = review_threshold(scores, 0.10)
    assert t == pytest.approx(0.10)  # flags 0.00 .. 0.09: ten of a hundred
    assert (scores < t).sum() == 10 and (scores < t + 0.01).sum() > 10
    assert review_threshold(pd.Series([0.9, np.nan, 0.95]), 0.34) == pytest.approx(0.9)  # NaN counts as 0
    assert review_threshold(np.array([0.5, 0.7]), 0.0) == pytest.approx(0.5)  # flags none
    for c in range(1, 100):  # exact hundredths stay themselves (0.29 * 100 is 28.999...)
        assert review_threshold(np.full(10, c / 100), 0.1) == c / 100
    assert review_threshold(np.full(10, 0.5699999999), 0.1) == 0.56  # never above the score


@pytest.mark.parametrize("side", ["top", "bottom", "left", "right"])
def test_border_contact_counts_every_side_of_the_image(side):
    # the head of test_a_head_cut_by_the_border, turned so the image cuts it on `side`
    cut = Ellipse(330.0, 135.0, 110.0, 90.0, 0.0).to_mask(SHAPE)  # cut by the right side
    mask = {"right": cut, "left": cut[:, ::-1], "top": cut[:, ::-1].T, "bottom": cut.T}[side]
    mask = np.ascontiguousarray(mask)  # top and bottom: a 400 x 270 image
    frame = np.ones(mask.shape, bool)
    frame[1:-1, 1:-1] = False  # the image's outermost pixels, each once
    q = _case(mask)
    on_border = int((mask.astype(bool) & frame).sum())
    assert on_border > 0
    assert q.border_contact == pytest.approx(on_border / fit_ellipse(mask).circumference)
    assert q.border_contact > SCALES["border_contact"][0] and q.score == 0.0


def test_the_band_in_mm_of_hc_does_not_depend_on_the_networks_resolution():
    # band_px is in network pixels (image pixels / scale); the band in mm of HC is measured on
    # the image, so the network's size must not change it
    prob = _soft_head(20.0)
    mask = HEAD.to_mask(SHAPE)
    fg = prob > 0.5
    e = fit_ellipse(mask)
    q1, q4 = (quality(prob, mask, fg, e, 150.0, 0.1, scale=s) for s in (1.0, 4.0))
    assert q4.band_px == pytest.approx(q1.band_px / 4)
    assert q4.hc_band_mm == pytest.approx(q1.hc_band_mm)
    assert q1.hc_band_mm == pytest.approx(2 * math.pi * q1.band_px * 0.1)


def test_the_plausible_hc_range_includes_its_ends():
    good = dict(ellipse_iou=0.99, one_component=1.0, border_contact=0.0, band_px=1.0,
                hc_band_mm=1.0, flip_agreement=float("nan"))
    lo, hi = HC_PLAUSIBLE_MM
    assert score_signals(**good, hc_mm=lo) == 1.0 and score_signals(**good, hc_mm=hi) == 1.0


def test_review_threshold_never_flags_more_than_the_share_off_the_grid():
    # scores with more than two decimals: the 2-decimal threshold must round DOWN, or the
    # image at the cut would be flagged too
    scores = np.arange(100) / 100.0 + 0.007  # the 11th lowest is 0.107: threshold 0.10, not 0.11
    assert review_threshold(scores, 0.10) == pytest.approx(0.10)
    for seed in range(5):
        scores = np.random.default_rng(seed).uniform(0.3, 1.0, 200)
        t = review_threshold(scores, 0.10)
        assert t == round(t, 2)
        assert (scores < t).sum() <= 20  # at most 10 %
        assert (scores < t + 0.01).sum() > 20  # and the next 2-decimal value would flag more
