"""Evaluation figures and overlays: the drawn geometry and plotted numbers are checked
against the inputs (closed forms, NumPy), not just that a figure comes back."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse as EllipsePatch
from test_predict import Constant, _inside, build_tiny_checkpoint

from fetalhead.ellipse import Ellipse
from fetalhead.predict import Predictor
from fetalhead.report import (
    bland_altman,
    centile_agreement,
    dice_histogram,
    draw_overlay,
    growth_chart,
    interval_plot,
    limits_of_agreement,
    pick_examples,
    plot_prediction,
    prediction_examples,
    review_scatter,
)

HC18 = os.environ.get("HC18_DIR")
SHAPE = (270, 400)
HEAD = Ellipse(cx=210.0, cy=130.0, a=100.0, b=70.0, angle_rad=0.4)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    if not HC18:
        pytest.skip("HC18_DIR not set")
    return build_tiny_checkpoint(tmp_path_factory.getbasetemp() / "tiny_model")


def _prediction(head: bool = True):
    """A Prediction measured from a hand-made probability map (the ellipse HEAD, or nothing)."""
    prob = _inside(HEAD, SHAPE).astype(np.float32) if head else np.zeros(SHAPE, np.float32)
    return Predictor(Constant(0.0), (64, 96), device="cpu").measure(prob, 0.1)


def _no_pyplot_figures():
    import matplotlib.pyplot as plt

    return plt.get_fignums() == []


def test_overlay_draws_the_head_ellipse_on_the_image():
    image = np.full(SHAPE, 100, np.uint8)
    pred = _prediction()
    rgb = draw_overlay(image, pred)
    assert rgb.shape == (*SHAPE, 3) and rgb.dtype == np.uint8
    e = pred.head_ellipse
    c, s = math.cos(e.angle_rad), math.sin(e.angle_rad)
    for t in np.linspace(0, 2 * math.pi, 24, endpoint=False):
        x = e.cx + e.a * math.cos(t) * c - e.b * math.sin(t) * s
        y = e.cy + e.a * math.cos(t) * s + e.b * math.sin(t) * c
        patch = rgb[round(y) - 1:round(y) + 2, round(x) - 1:round(x) + 2].reshape(-1, 3).astype(int)
        r, g, b = patch[np.argmax(patch[:, 0])]
        assert r > 200 and r > g + 50 > b + 100, (t, (r, g, b))  # orange on the curve
    assert (rgb[130, 210] == 100).all() and (rgb[260, 20] == 100).all()  # grey elsewhere
    assert (rgb[:40, :150] != 100).any()  # the "HC ... mm" label


def test_overlay_marks_the_ends_of_bpd_and_ofd_with_calipers():
    pred = _prediction()
    image = np.full(SHAPE, 100, np.uint8)
    rgb = draw_overlay(image, pred)
    e = pred.head_ellipse
    c, s = math.cos(e.angle_rad), math.sin(e.angle_rad)
    orange = lambda x, y: rgb[round(y), round(x), 0] > 200 and rgb[round(y), round(x), 2] < 120  # noqa: E731
    for sign in (1, -1):
        ox, oy = e.cx + sign * e.a * c, e.cy + sign * e.a * s  # OFD ends: the outline runs nearly up-down
        assert orange(ox + 3, oy) and orange(ox - 3, oy), (sign, "OFD")
        bx, by = e.cx - sign * e.b * s, e.cy + sign * e.b * c  # BPD ends: the outline runs nearly across
        assert orange(bx, by + 3) and orange(bx, by - 3), (sign, "BPD")
    assert not orange(e.cx + 0.5 * e.a * c + 3, e.cy + 0.5 * e.a * s)  # no line along the axes


def test_overlay_without_a_head_says_so_in_red():
    pred = _prediction(head=False)
    rgb = draw_overlay(np.full(SHAPE, 100, np.uint8), pred)
    red = (rgb[..., 0] > 180) & (rgb[..., 1] < 120)
    assert red[:40].any() and not red[40:].any()


def test_plot_prediction_places_the_ellipse_patch():
    pred = _prediction()
    gt = _inside(HEAD, SHAPE).astype(np.uint8)
    fig = plot_prediction(np.full(SHAPE, 90, np.uint8), pred, gt, title="x")
    assert isinstance(fig, Figure) and _no_pyplot_figures()
    ax = fig.axes[0]
    patches = [p for p in ax.patches if isinstance(p, EllipsePatch)]
    assert len(patches) == 1
    e, p = pred.head_ellipse, patches[0]
    assert p.center == pytest.approx((e.cx, e.cy))
    assert (p.width, p.height) == pytest.approx((2 * e.a, 2 * e.b))
    assert p.angle == pytest.approx(math.degrees(e.angle_rad))
    assert ax.get_ylim() == (SHAPE[0] - 0.5, -0.5)  # image orientation: y down
    other = Figure()
    ax2 = other.add_subplot()
    assert plot_prediction(np.full(SHAPE, 90, np.uint8), pred, ax=ax2) is other
    assert ax.get_legend() is None and ax2.get_legend() is None


def test_plot_prediction_legend_names_the_annotation_and_the_ellipse():
    gt = _inside(HEAD, SHAPE).astype(np.uint8)
    fig = plot_prediction(np.full(SHAPE, 90, np.uint8), _prediction(), gt, legend=True)
    names = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert names == ["annotation", "fitted ellipse"]


def test_pick_examples_best_median_worst():
    df = pd.DataFrame({"dice": [0.5, 0.95, 0.7, 0.1, 0.8]})
    assert pick_examples(df) == {"best": 1, "median": 2, "worst": 3}


def test_limits_of_agreement_and_bland_altman_plot():
    rng = np.random.default_rng(0)
    true = rng.uniform(60, 340, 50)
    pred = true + rng.normal(1.0, 3.0, 50)
    pred[4] = np.nan
    d = (pred - true)[np.isfinite(pred)]
    mean, lo, hi = limits_of_agreement(pred, true)
    assert mean == pytest.approx(d.mean())
    assert (hi - lo) / 2 == pytest.approx(1.96 * d.std(ddof=1))
    fig = bland_altman(pred, true)
    ax = fig.axes[0]
    offsets = ax.collections[0].get_offsets()
    assert len(offsets) == 49
    np.testing.assert_allclose(np.asarray(offsets)[:, 1], d)
    levels = sorted(line.get_ydata()[0] for line in ax.lines)
    assert levels == pytest.approx(sorted([mean, lo, hi, 0.0]))
    assert _no_pyplot_figures()


def test_review_scatter_splits_flagged_from_ok_and_counts_gross_errors():
    df = pd.DataFrame({"quality": [0.1, 0.9, 0.2, 1.0, 0.5],
                       "q_hc_band_mm": [9.0, 3.0, 7.0, 2.0, 4.0],
                       "hc_abs_error_mm": [8.0, 7.0, 1.0, 0.5, np.nan]})
    fig = review_scatter(df, review_below=0.28)
    ax = fig.axes[0]
    ok, flagged = (np.asarray(c.get_offsets()) for c in ax.collections)
    np.testing.assert_allclose(ok, [[3.0, 7.0], [2.0, 0.5]])  # the no-head row (NaN error) is left out
    np.testing.assert_allclose(flagged, [[9.0, 8.0], [7.0, 1.0]])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["ok: 2, gross 1", "review (score < 0.28): 2, gross 1"]
    assert ax.lines[0].get_ydata()[0] == 6.0 and ax.get_title() == "n = 4, 2 off by > 6 mm"
    assert _no_pyplot_figures()


def test_interval_plot_splits_inside_from_outside():
    from fetalhead.interval import half_width_mm

    w = half_width_mm(np.array([0.1, 0.3]))
    df = pd.DataFrame({"pixel_size_mm": [0.1, 0.1, 0.3, 0.3, 0.2],
                       "hc_error_mm": [0.5 * w[0], -1.5 * w[0], -0.9 * w[1], 1.1 * w[1], np.nan]})
    df["hc_abs_error_mm"] = df["hc_error_mm"].abs()
    ax = interval_plot(df).axes[0]
    band, held, out = ax.collections
    np.testing.assert_allclose(np.asarray(held.get_offsets())[:, 1], [0.5 * w[0], -0.9 * w[1]])
    np.testing.assert_allclose(np.asarray(out.get_offsets())[:, 1], [-1.5 * w[0], 1.1 * w[1]])
    top = band.get_paths()[0].vertices[:, 1].max()  # the band reaches the coarsest image's half-width
    assert top == pytest.approx(w[1]) and ax.get_title() == "n = 4: 50.0 % inside"
    assert _no_pyplot_figures()


def test_centile_agreement_reads_both_hcs_at_the_age_the_sonographers_gives():
    from fetalhead.ellipse import gestational_age_weeks
    from fetalhead.growth import hc_for_age
    from fetalhead.interval import half_width_mm

    df = pd.DataFrame({"filename": ["same.png", "off.png", "young.png", "none.png"],
                       "pixel_size_mm": [0.1, 0.2, 0.1, 0.1],
                       "hc_true_mm": [180.0, 300.0, 70.0, 200.0],
                       "hc_pred_mm": [180.0, 290.0, 72.0, np.nan]})
    t = centile_agreement(df)
    assert list(t["filename"]) == ["same.png", "off.png", "young.png"]  # no head: no row
    same, off, young = t.to_dict("records")
    assert same["centile_pred"] == pytest.approx(same["centile_true"])
    ga = gestational_age_weeks(300.0)[0]
    w = half_width_mm(0.2)
    want = hc_for_age(290.0, ga, (290.0 - w, 290.0 + w))
    assert (off["ga_weeks"], off["centile_pred"], off["centile_low"], off["centile_high"]) == pytest.approx(
        (ga, want.centile, want.centile_low, want.centile_high))
    assert off["centile_pred"] < off["centile_true"] and off["band_pred"] == want.band
    assert young["ga_weeks"] < 14 and np.isnan(young["centile_pred"]) and young["band_pred"] == ""
    ax = growth_chart(t).axes[0]
    points = ax.containers[0].lines[0]  # the errorbar's markers: heads inside the standard's weeks only
    np.testing.assert_allclose(np.asarray(points.get_ydata(), float), [180.0, 290.0])
    assert _no_pyplot_figures()


def test_dice_histogram_counts_every_image():
    dice = np.r_[np.random.default_rng(1).uniform(0.6, 1.0, 40), np.nan]
    fig = dice_histogram(dice)
    ax = fig.axes[0]
    assert sum(p.get_height() for p in ax.patches) == 40
    median_line = [line for line in ax.lines if line.get_linestyle() == "--"][0]
    assert median_line.get_xdata()[0] == pytest.approx(np.nanmedian(dice))


def test_prediction_examples_on_real_images(tiny_checkpoint):
    from fetalhead.evaluate import evaluate_split

    predictor = Predictor.from_checkpoint(tiny_checkpoint, device="cpu")
    df = evaluate_split(predictor, "test", limit=3, progress=False)
    fig = prediction_examples(df, predictor)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 3
    best = df.loc[df["dice"].idxmax(), "filename"]
    assert titles[0].startswith(f"best: {best}")
    assert titles[1].startswith("median") and titles[2].startswith("worst")
    assert _no_pyplot_figures()
