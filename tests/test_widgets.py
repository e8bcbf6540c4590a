"""Headless tests of fetalhead.widgets: set control values as a browser would, check what is shown.

Synthetic cases only (cv2-drawn ellipses), so no model or data is needed; the oracles are
independent: NumPy Dice, pixel counts, closed-form ellipse perimeters and the colours decoded
from the rendered PNG.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from PIL import Image
from torch import nn

from fetalhead.ellipse import ANNOTATION_BIAS_PX
from fetalhead.errors import FetalheadError
from fetalhead.interval import half_width_mm
from fetalhead.synthetic import synthetic_cases
from fetalhead.viz import PREDICTION_COLOR
from fetalhead.widgets import PredictionViewer, demo_viewer, held_out_viewer

FILL = np.round(255 * np.array(to_rgb(PREDICTION_COLOR)))  # the prediction fill, 0-255


def np_dice(pred: np.ndarray, target: np.ndarray) -> float:
    p, t = pred > 0, target > 0
    return 2.0 * np.logical_and(p, t).sum() / (p.sum() + t.sum())


def ramanujan(a: float, b: float) -> float:
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))


def hc_mm(a: float, b: float, pixel_size_mm: float) -> float:
    """The HC a predictor reports for a predicted ellipse (a, b) in pixels: its perimeter less
    the annotation bias, in mm."""
    return (ramanujan(a, b) - ANNOTATION_BIAS_PX) * pixel_size_mm


def pred_masks(cases) -> list[np.ndarray]:
    """The "prediction" of each synthetic case: its rasterised predicted ellipse, where
    `soft_probability` is above 0.5 (the last case's blob is not the largest component)."""
    return [e.to_mask(im.shape) for e, im in zip(cases.pred_ellipses, cases.images, strict=True)]


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def blurred_case(scale: float, shape=(160, 200), a=60.0, b=45.0, angle=30.0, sigma=4.0):
    """GT: filled ellipse (a, b) at the centre; prob: the ellipse scaled by `scale`, blurred."""
    h, w = shape
    centre = (w / 2, h / 2)
    gt = np.zeros(shape, np.uint8)
    cv2.ellipse(gt, (centre, (2 * a, 2 * b), angle), 1, -1)
    big = np.zeros(shape, np.float32)
    cv2.ellipse(big, (centre, (2 * a * scale, 2 * b * scale), angle), 1.0, -1)
    prob = np.clip(cv2.GaussianBlur(big, (0, 0), sigma), 0.0, 1.0)
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(60, 15, shape) + 60 * gt, 0, 255).astype(np.uint8)
    return image, gt, prob


@pytest.fixture(scope="module")
def cases():
    return synthetic_cases(6, seed=0)


@pytest.fixture
def viewer(cases) -> PredictionViewer:
    return PredictionViewer(cases.images, cases.probs, cases.pixel_sizes_mm, cases.filenames,
                            cases.masks, cases.hc_true_mm)


# ---------------------------------------------------------------------- PredictionViewer
def test_initial_state_and_label(viewer, cases):
    assert viewer.current_position == 1 and viewer.current_index == 0
    assert viewer.current_filename == "synthetic_000_HC.png"
    assert viewer.render_count == 1
    assert viewer.image.value == viewer.last_png and viewer.last_png.startswith(b"\x89PNG")
    # Dice against NumPy on prob > 0.5; true HC passed through; the label shows both.
    d = np_dice(cases.probs[0] > 0.5, cases.masks[0])
    assert viewer.current_dice == pytest.approx(d, abs=1e-12)
    assert viewer.current_hc_true_mm == pytest.approx(cases.hc_true_mm[0])
    m = re.fullmatch(r"case 1/6: synthetic_000_HC\.png — Dice (\S+) — HC pred (\S+) ± (\S+) mm vs "
                     r"true (\S+) mm — quality 1\.00 \(ok\)", viewer.label_text)
    assert m, viewer.label_text
    assert float(m[1]) == pytest.approx(d, abs=5e-4)
    assert float(m[2]) == pytest.approx(viewer.current_hc_mm, abs=0.05)
    assert float(m[3]) == pytest.approx(half_width_mm(cases.pixel_sizes_mm[0]), abs=0.05)
    assert float(m[4]) == pytest.approx(cases.hc_true_mm[0], abs=0.05)
    assert "synthetic_000_HC.png" in viewer.label.value and "case 1/6" in viewer.label.value


def test_predicted_hc_matches_the_closed_form(viewer, cases):
    # soft_probability is above 0.5 exactly inside the rasterised "prediction" ellipse, so HC
    # at 0.5 is that ellipse's perimeter (Ramanujan) less the annotation bias, x pixel size, up
    # to the fit to pixel edges.
    for i in range(len(viewer)):
        e = cases.pred_ellipses[i]
        expected = hc_mm(e.a, e.b, cases.pixel_sizes_mm[i])
        assert viewer.stats(i).hc_pred_mm == pytest.approx(expected, rel=0.003)


def test_case_slider_changes_what_is_shown(viewer, cases):
    label0, png0, count0 = viewer.label.value, viewer.last_png, viewer.render_count
    viewer.case_slider.value = 2
    assert viewer.current_index == 1
    assert viewer.current_filename == cases.filenames[1]
    assert viewer.label_text.startswith("case 2/6: synthetic_001_HC.png — Dice ")
    assert viewer.label.value != label0
    assert viewer.image.value == viewer.last_png != png0
    assert viewer.render_count == count0 + 1  # one change, one render
    assert viewer.current_dice == pytest.approx(
        np_dice(cases.probs[1] > 0.5, cases.masks[1]), abs=1e-12)


@pytest.mark.parametrize("scale, dice_rises", [(1.2, True), (0.8, False)])
def test_threshold_moves_area_dice_and_hc_in_the_expected_direction(scale, dice_rises):
    image, gt, prob = blurred_case(scale)
    v = PredictionViewer([image], [prob], [0.2], ["blurred"], [gt], [100.0])
    areas, dices, hcs = [], [], []
    for t in (0.1, 0.3, 0.5, 0.7, 0.9):
        v.threshold_slider.value = t
        assert v.current_stats.area_px == int((prob > t).sum())  # independent pixel count
        assert v.current_dice == pytest.approx(np_dice(prob > t, gt), abs=1e-12)
        assert f"Dice {np_dice(prob > t, gt):.3f}" in v.label_text
        areas.append(v.current_stats.area_px)
        dices.append(v.current_dice)
        hcs.append(v.current_hc_mm)
    assert all(np.diff(areas) < 0)  # a higher threshold keeps fewer pixels
    assert all(np.diff(hcs) < 0)
    # Over-segmentation (scale > 1) shrinks towards the truth: Dice rises; under-segmentation
    # shrinks away from it: Dice falls.
    assert all(np.diff(dices) > 0) if dice_rises else all(np.diff(dices) < 0)
    # At 0.5 the blurred edge sits on the scaled ellipse: HC close to its perimeter.
    v.threshold_slider.value = 0.5
    assert v.current_hc_mm == pytest.approx(hc_mm(60 * scale, 45 * scale, 0.2), rel=0.02)


def test_the_viewer_measures_like_a_predictor(viewer, cases):
    # The last case carries a stray blob of probability 0.6: the measurement keeps only the
    # largest component (the predicted ellipse), and its quality flags the case for review.
    last = len(viewer) - 1
    for i in range(len(viewer)):
        mask = pred_masks(cases)[i]
        assert np.array_equal(viewer.pred_mask(i), mask)
        assert viewer.stats(i).area_px == int(mask.sum())
    assert [viewer.stats(i).status for i in range(last)] == ["ok"] * last
    assert viewer.stats(last).status == "review" and viewer.stats(last).quality < 0.5
    assert (cases.probs[last] > 0.5).sum() > viewer.stats(last).area_px  # the blob was there


def test_threshold_changes_the_rendered_overlay(viewer):
    png0 = viewer.last_png
    viewer.threshold_slider.value = 0.9
    assert viewer.last_png != png0 and viewer.current_index == 0
    assert "p ≥ 0.90" not in viewer.label_text  # the label keeps its documented format


def test_sort_by_dice_filename_and_hc_error(viewer, cases):
    dices = [np_dice(p, m) for p, m in zip(pred_masks(cases), cases.masks, strict=True)]
    viewer.case_slider.value = 4
    viewer.sort_dropdown.value = "dice_asc"
    assert viewer.order == list(np.argsort(dices, kind="stable"))
    assert viewer.current_position == 1 and viewer.current_index == int(np.argmin(dices))
    assert viewer.label_text.startswith(f"case 1/6: {cases.filenames[int(np.argmin(dices))]}")
    viewer.sort_dropdown.value = "dice_desc"
    assert viewer.order == list(np.argsort(-np.asarray(dices), kind="stable"))
    assert viewer.current_filename == cases.filenames[int(np.argmax(dices))]
    viewer.sort_dropdown.value = "hc_error_desc"
    errors = viewer.table()["hc_error_mm"].abs().to_numpy()
    assert all(np.diff(errors) <= 0)
    viewer.sort_dropdown.value = "filename"
    assert list(viewer.table()["filename"]) == sorted(cases.filenames)


def test_sort_puts_cases_without_ground_truth_last(cases):
    masks = list(cases.masks)
    masks[1] = None
    v = PredictionViewer(cases.images, cases.probs, cases.pixel_sizes_mm, cases.filenames, masks)
    assert math.isnan(v.stats(1).dice) and "true n/a" in v.label_text
    for sort in ("dice_asc", "dice_desc"):
        v.sort_dropdown.value = sort
        assert v.order[-1] == 1


def test_threshold_resorts_but_keeps_the_shown_case(viewer):
    viewer.sort_dropdown.value = "dice_asc"
    viewer.case_slider.value = 3
    shown, count = viewer.current_index, viewer.render_count
    viewer.threshold_slider.value = 0.85
    assert viewer.current_index == shown
    assert viewer.render_count == count + 1
    dices = [viewer.stats(i, 0.85).dice for i in range(len(viewer))]
    assert viewer.order == list(np.argsort(dices, kind="stable"))


def test_opacity_changes_the_rendered_pixels(cases):
    v = PredictionViewer(cases.images[:1], cases.probs[:1], cases.pixel_sizes_mm[:1],
                         cases.filenames[:1], cases.masks[:1], opacity=0.0)
    h, w = cases.images[0].shape
    e = cases.pred_ellipses[0]
    scale = 640 / w  # the figure is 640 px wide and its axes fill it
    r, c = int(round((e.cy + 0.5) * scale)), int(round((e.cx + 0.5) * scale))
    patch = (slice(r - 3, r + 4), slice(c - 3, c + 4))  # deep inside the predicted head

    def centre_rgb() -> np.ndarray:
        rgb = decode(v.last_png)
        assert rgb.shape[:2] == (round(640 * h / w), 640)
        return rgb[patch].reshape(-1, 3)

    grey = centre_rgb()
    assert np.abs(grey - grey[:, :1]).max() <= 1  # no overlay: R = G = B
    v.opacity_slider.value = 1.0
    assert np.abs(centre_rgb() - FILL).max() <= 2  # opaque overlay: the overlay colour
    v.opacity_slider.value = 0.5
    assert np.abs(centre_rgb() - (grey + FILL) / 2).max() <= 3  # alpha blending


def test_widget_tree_and_display(viewer):
    box = viewer.widget
    assert viewer.image in box.children and viewer.label in box.children
    assert "fetalhead-viewer" in box._dom_classes
    bundle = viewer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == box.model_id


def test_no_pyplot_figure_leaks():
    before = plt.get_fignums()
    v = demo_viewer(3)
    v.case_slider.value = 2
    v.threshold_slider.value = 0.3
    v.figure()
    assert plt.get_fignums() == before


@pytest.mark.parametrize("kwargs, words", [
    (dict(probs=[np.zeros((4, 4), np.float32)]), "prob (4, 4)"),
    (dict(probs=[np.full((216, 320), 1.5, np.float32)]), "outside [0, 1]"),
    (dict(sort="best"), "unknown sort"),
    (dict(pixel_sizes_mm=[0.1, 0.2]), "pixel_sizes_mm has 2 entries"),
])
def test_bad_inputs_raise_one_line(cases, kwargs, words):
    args = dict(images=cases.images[:1], probs=cases.probs[:1], pixel_sizes_mm=[0.1],
                filenames=["x.png"], masks=cases.masks[:1])
    args.update(kwargs)
    with pytest.raises(FetalheadError, match=re.escape(words)) as info:
        PredictionViewer(**args)
    assert "\n" not in str(info.value)


class IntensityLogits(nn.Module):
    """A fake network for the synthetic HC18 folder: bright (head) pixels are positive."""

    padding = "same"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 40.0 * (x - 0.3)


def test_from_evaluation_shows_what_evaluate_reports(synthetic_hc18):
    from fetalhead.evaluate import evaluate_split
    from fetalhead.predict import Predictor

    predictor = Predictor(IntensityLogits(), (64, 96), device="cpu")
    results = evaluate_split(predictor, "test", root=synthetic_hc18, progress=False)
    v = PredictionViewer.from_evaluation(predictor, results, root=synthetic_hc18, n_cases=None)
    assert len(v) == len(results) and v.sort_dropdown.value == "dice_asc"
    by_name = results.set_index("filename")
    for i in range(len(v)):
        name = v._filenames[i]
        s = v.stats(i)
        assert s.dice == pytest.approx(by_name.at[name, "dice"], abs=1e-12)
        assert s.hc_pred_mm == pytest.approx(by_name.at[name, "hc_pred_mm"], nan_ok=True)
        assert s.hc_true_mm == pytest.approx(by_name.at[name, "hc_true_mm"])
    assert v.current_dice == pytest.approx(results["dice"].min())


def test_from_evaluation_of_your_own_folder(synthetic_hc18, tmp_path):
    """The viewer over `evaluate_folder`'s table reads each image and mask from `files`."""
    import shutil

    from fetalhead.data import annotation_path, image_path, read_training_csv
    from fetalhead.evaluate import evaluate_folder
    from fetalhead.predict import Predictor

    predictor = Predictor(IntensityLogits(), (64, 96), device="cpu")
    table = read_training_csv(synthetic_hc18).head(3)
    images, masks = [], []
    for k, name in enumerate(table["filename"]):
        images.append(Path(shutil.copy(image_path(name, root=synthetic_hc18), tmp_path / f"scan{k}.png")))
        masks.append(Path(shutil.copy(annotation_path(name, synthetic_hc18), tmp_path / f"scan{k}_m.png")))
    results = evaluate_folder(predictor, images, masks, list(table["pixel_size_mm"]), progress=False)
    files = {im.name: (im, m) for im, m in zip(images, masks, strict=True)}
    v = PredictionViewer.from_evaluation(predictor, results, files=files, n_cases=None)
    by_name = results.set_index("filename")
    assert sorted(v._filenames) == sorted(files)
    for i in range(len(v)):
        assert v.stats(i).dice == pytest.approx(by_name.at[v._filenames[i], "dice"], abs=1e-12)
        assert v.stats(i).hc_true_mm == pytest.approx(by_name.at[v._filenames[i], "hc_true_mm"])


def test_viewer_sorts_and_filters_by_quality():
    """Through a Predictor: a sharp head is "ok", a blurred one "review"; the quality sort shows
    the blurred first and the review filter keeps only it."""
    from test_predict import EllipseLogits

    from fetalhead.ellipse import Ellipse
    from fetalhead.predict import Predictor

    orig = (270, 400)
    head = Ellipse(200.0, 135.0, 90.0, 70.0, 0.3)
    sharp = Predictor(EllipseLogits(head, orig, k=400.0), (64, 96), device="cpu")
    blurred = Predictor(EllipseLogits(head, orig, k=3.0), (64, 96), device="cpu")
    image = np.random.default_rng(0).integers(0, 256, orig, dtype=np.uint8)  # not blank: its head is measured
    probs = [sharp.probabilities([image])[0], blurred.probabilities([image])[0]]

    v = PredictionViewer([image, image], probs, [0.1, 0.1], ["sharp.png", "blurred.png"], predictor=sharp)
    assert [v.stats(i).status for i in range(2)] == ["ok", "review"]
    v.sort_dropdown.value = "quality_asc"
    assert v.order == [1, 0] and v.current_filename == "blurred.png"
    assert "quality 0.00 (review)" in v.label_text
    v.sort_dropdown.value = "filename"
    v.review_toggle.value = True
    assert v.order == [1] and v.case_slider.max == 1 and "case 1/1" in v.label_text
    v.threshold_slider.value = 0.3  # the shown case stays reachable
    assert v.current_filename == "blurred.png"
    v.review_toggle.value = False
    assert sorted(v.order) == [0, 1]



def test_headless_cases_are_the_least_trusted_and_the_filter_says_when_none_is_flagged():
    from test_predict import EllipseLogits

    from fetalhead.ellipse import Ellipse
    from fetalhead.predict import Predictor

    orig = (270, 400)
    head = Ellipse(200.0, 135.0, 90.0, 70.0, 0.3)
    sharp = Predictor(EllipseLogits(head, orig, k=400.0), (64, 96), device="cpu")
    blurred = Predictor(EllipseLogits(head, orig, k=3.0), (64, 96), device="cpu")
    image = np.random.default_rng(0).integers(0, 256, orig, dtype=np.uint8)
    clear, vague = sharp.probabilities([image])[0], blurred.probabilities([image])[0]
    faint = (clear > 0.5) * 0.8  # a head at 0.8: found at threshold 0.5, not at 0.85
    v = PredictionViewer([image] * 3, [clear, vague, np.zeros_like(clear)], [0.1] * 3,
                         ["sharp.png", "blurred.png", "blank.png"], predictor=sharp)
    assert [v.stats(i).status for i in range(3)] == ["ok", "review", "no head found"]
    v.sort_dropdown.value = "quality_asc"
    assert v.order == [2, 1, 0]  # no head found: the least trusted, before even a quality of 0
    calm = PredictionViewer([image] * 2, [clear, clear], [0.1] * 2, ["a.png", "b.png"], predictor=sharp)
    calm.review_toggle.value = True
    assert calm.order == [0, 1] and "(no case flagged at this threshold: all shown)" in calm.label_text
    calm.review_toggle.value = False
    assert "no case flagged" not in calm.label_text
    # a threshold that flags more cases opens the slider that one flagged case had locked
    moving = PredictionViewer([image] * 2, [vague, faint], [0.1] * 2, ["blurred.png", "faint.png"], predictor=sharp)
    moving.review_toggle.value = True
    assert moving.order == [0] and moving.case_slider.disabled
    moving.threshold_slider.value = 0.85
    assert moving.order == [0, 1] and not moving.case_slider.disabled and moving.case_slider.max == 2


def test_held_out_viewer_falls_back_to_the_demo_without_data(tmp_path):
    v = held_out_viewer(n=3, root=tmp_path / "no_hc18")
    assert len(v) == 3 and v.current_filename.startswith("synthetic_")


def test_held_out_viewer_shows_real_test_images(hc18_dir):
    from fetalhead.paths import shipped_checkpoint
    from fetalhead.split import load_split

    if not shipped_checkpoint().is_file():
        pytest.skip("no shipped weights")
    v = held_out_viewer(n=3, root=hc18_dir)
    test = set(load_split().query("split == 'test'")["filename"])
    assert len(v) == 3 and set(v.table()["filename"]) <= test
    assert v.current_stats.status in ("ok", "review") and v.current_stats.dice > 0.8


def _head_frame(a: float, b: float, shape=(120, 180)) -> np.ndarray:
    """A gray frame with one bright filled ellipse (a, b px) at its centre: a 'head'."""
    frame = np.full(shape, 30, np.uint8)
    cv2.ellipse(frame, ((shape[1] / 2, shape[0] / 2), (2 * a, 2 * b), 15.0), 200, -1)
    return frame


def test_clip_viewer_shows_each_frame_of_a_video_as_the_predictor_measures_it(tmp_path):
    from video_files import write_clip

    from fetalhead.predict import Predictor
    from fetalhead.widgets import clip_viewer

    frames = [_head_frame(40 + 4 * k, 30 + 2 * k) for k in range(5)]  # the head grows frame by frame
    clip = write_clip(tmp_path / "sweep.avi", frames)
    predictor = Predictor(IntensityLogits(), (64, 96), device="cpu")
    v = clip_viewer(clip, 0.2, predictor=predictor)
    assert len(v) == 5 and v._filenames == [f"sweep.avi frame {k}" for k in range(1, 6)]
    for i, frame in enumerate(frames):
        assert v.stats(i).hc_pred_mm == pytest.approx(predictor.predict(frame, pixel_size_mm=0.2).hc_mm, rel=1e-9)
    assert np.all(np.diff([v.stats(i).hc_pred_mm for i in range(5)]) > 0)
    some = clip_viewer(clip, 0.2, predictor=predictor, frames=[4, 2])
    assert some._filenames == ["sweep.avi frame 4", "sweep.avi frame 2"]
    assert some.stats(1).hc_pred_mm == pytest.approx(v.stats(1).hc_pred_mm, rel=1e-9)
    with pytest.raises(FetalheadError, match=r"sweep.avi: 5 frames, more than max_frames=3 .* frames=range\(1, 6, 2\)"):
        clip_viewer(clip, 0.2, predictor=predictor, max_frames=3)
    with pytest.raises(FetalheadError, match=r"no frame 6 in its 5 frames"):
        clip_viewer(clip, 0.2, predictor=predictor, frames=[1, 6])
    with pytest.raises(FetalheadError, match="no pixel size"):
        clip_viewer(clip, predictor=predictor)
