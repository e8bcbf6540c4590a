"""Tests for fetalhead.viz: one palette drawn by one overlay function, saving and rendering figures."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from matplotlib.colors import same_color, to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse as EllipsePatch
from PIL import Image

from fetalhead.config import QUICK_ENV
from fetalhead.ellipse import Ellipse
from fetalhead.viz import (
    ANNOTATION_COLOR,
    ELLIPSE_COLOR,
    FIGURE_DPI,
    NO_HEAD_COLOR,
    PREDICTION_COLOR,
    figure_to_png,
    plot_overlay,
    rgb255,
    save_figure,
)

SHAPE = (60, 90)
HEAD = Ellipse(cx=45.0, cy=30.0, a=25.0, b=15.0, angle_rad=0.5)


def _layers(ax) -> dict:
    """What an overlay drew on `ax`: RGBA fill colours, outline colours, ellipse patches."""
    fills = [im.get_array() for im in ax.get_images() if np.ndim(im.get_array()) == 3]
    fill_colours = [tuple(np.unique(f.reshape(-1, 4)[f.reshape(-1, 4)[:, 3] > 0], axis=0)[0]) for f in fills]
    outlines = [tuple(c.get_edgecolor()[0]) for c in ax.collections]
    ellipses = [p for p in ax.patches if isinstance(p, EllipsePatch)]
    return dict(fills=fill_colours, outlines=outlines, ellipses=ellipses)


def test_the_palette_has_four_distinct_colours():
    colours = [PREDICTION_COLOR, ANNOTATION_COLOR, ELLIPSE_COLOR, NO_HEAD_COLOR]
    assert len({rgb255(c) for c in colours}) == 4
    assert rgb255("#ff8000") == (255, 128, 0) and rgb255("white") == (255, 255, 255)


def test_plot_overlay_draws_each_layer_in_its_palette_colour():
    image = np.full(SHAPE, 90, np.uint8)
    gt = HEAD.to_mask(SHAPE)
    pred = Ellipse(47.0, 31.0, 27.0, 16.0, 0.5).to_mask(SHAPE)
    fig = plot_overlay(image, pred, gt, HEAD, opacity=0.4, legend=True, title="case")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    layers = _layers(ax)
    assert layers["fills"] == [pytest.approx((*to_rgb(PREDICTION_COLOR), 0.4))]
    assert [same_color(c, ANNOTATION_COLOR) for c in layers["outlines"]] == [True]
    (patch,) = layers["ellipses"]
    assert same_color(patch.get_edgecolor(), ELLIPSE_COLOR) and patch.get_linestyle() == "--"
    assert patch.center == pytest.approx((HEAD.cx, HEAD.cy))
    assert (patch.width, patch.height) == pytest.approx((2 * HEAD.a, 2 * HEAD.b))
    assert patch.angle == pytest.approx(math.degrees(HEAD.angle_rad))
    assert ax.get_ylim() == (SHAPE[0] - 0.5, -0.5) and ax.get_xlim() == (-0.5, SHAPE[1] - 0.5)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["prediction", "annotation",
                                                                    "fitted ellipse"]
    assert ax.get_title() == "case"


def test_plot_overlay_on_given_axes_and_bad_shapes():
    image = np.zeros(SHAPE, np.uint8)
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_overlay(image, ax=ax) is fig and len(ax.get_images()) == 1  # the image alone
    assert ax.get_legend() is None
    with pytest.raises(ValueError, match="annotation shape"):
        plot_overlay(image, annotation=np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="prediction shape"):
        plot_overlay(image, prediction=np.zeros((SHAPE[0], 10), np.uint8))


def test_report_and_viewer_draw_with_the_same_palette():
    """The report's figure and the viewer's figure are both `plot_overlay`: the annotation and
    the ellipse come out in the same colours, and the viewer's prediction in the palette's."""
    from test_predict import Constant

    from fetalhead.predict import Predictor
    from fetalhead.report import plot_prediction
    from fetalhead.widgets import PredictionViewer

    image = np.full(SHAPE, 90, np.uint8)
    gt = HEAD.to_mask(SHAPE)
    prob = gt.astype(np.float32)
    predictor = Predictor(Constant(0.0), SHAPE, device="cpu")
    pred = predictor.measure(prob, 0.5)
    report = _layers(plot_prediction(image, pred, gt).axes[0])
    viewer = _layers(PredictionViewer([image], [prob], [0.5], masks=[gt], predictor=predictor,
                                      opacity=0.3).figure().axes[0])
    for layers in (report, viewer):
        assert [same_color(c, ANNOTATION_COLOR) for c in layers["outlines"]] == [True]
        assert [same_color(p.get_edgecolor(), ELLIPSE_COLOR) for p in layers["ellipses"]] == [True]
    assert report["fills"] == [] and viewer["fills"] == [pytest.approx((*to_rgb(PREDICTION_COLOR), 0.3))]
    assert report["ellipses"][0].center == pytest.approx(viewer["ellipses"][0].center)


def _png_size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


def test_save_figure_to_a_folder_to_figures_and_in_quick_mode(tmp_path, monkeypatch):
    fig = Figure(figsize=(2.0, 1.0))
    fig.add_subplot().plot([0, 1])
    path = save_figure(fig, "hist", out_dir=tmp_path / "sub")
    assert path == tmp_path / "sub" / "hist.png"
    assert _png_size(path.read_bytes()) == (2 * FIGURE_DPI, FIGURE_DPI)
    monkeypatch.setattr("fetalhead.viz.figures_dir", lambda: tmp_path / "figures")
    monkeypatch.delenv(QUICK_ENV, raising=False)
    assert save_figure(fig, "eval_dice.png", dpi=50) == tmp_path / "figures" / "eval_dice.png"
    assert _png_size((tmp_path / "figures" / "eval_dice.png").read_bytes()) == (100, 50)
    # quick mode (tests, CI) never writes into figures/: the cache gets the file instead
    monkeypatch.setenv(QUICK_ENV, "1")
    monkeypatch.setenv("FETALHEAD_CACHE", str(tmp_path / "cache"))
    assert save_figure(fig, "01_x.png") == tmp_path / "cache" / "figures" / "01_x.png"
    assert not (tmp_path / "figures" / "01_x.png").exists()


def test_figure_to_png_renders_at_the_figure_size():
    fig = Figure(figsize=(3.0, 2.0), dpi=50)
    png = figure_to_png(fig)
    assert png.startswith(b"\x89PNG") and _png_size(png) == (150, 100)
