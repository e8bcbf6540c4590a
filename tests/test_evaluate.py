"""Held-out evaluation, bootstrap intervals, the report files and the challenge submission.

A "perfect" predictor that returns the annotation itself is the oracle for the evaluation
wiring: every overlap score must be exactly 1 and HC must match the CSV to the annotation
bias's accuracy. Tests of the wiring run on a synthetic HC18 folder; those about the real
annotations (their line, their bias) on the real data."""

from __future__ import annotations

import hashlib
import json
import math
import os

import numpy as np
import pandas as pd
import pytest
from oracles import conic_fit_semi_axes
from pages import linked
from PIL import Image
from scipy.special import ellipe
from test_predict import Constant, synthetic_tiny_model

from fetalhead.ellipse import ANNOTATION_BIAS_PX, SUBMISSION_COLUMNS, challenge_row
from fetalhead.errors import FetalheadError
from fetalhead.evaluate import (
    EVAL_COLUMNS,
    REPORT_FILES,
    SUMMARY_METRICS,
    bootstrap_ci,
    check_submission,
    evaluate_folder,
    evaluate_split,
    predict_challenge,
    summary_table,
    write_report,
)
from fetalhead.predict import Predictor

HC18 = os.environ.get("HC18_DIR")
needs_data = pytest.mark.skipif(not HC18, reason="HC18_DIR not set")


@pytest.fixture(scope="session")
def synthetic_tiny(tmp_path_factory):
    """(synthetic HC18 folder, tiny checkpoint trained on it)."""
    return synthetic_tiny_model(tmp_path_factory.getbasetemp() / "synthetic_tiny")


class MapPredictor(Predictor):
    """Returns a given probability map per image (looked up by the image's bytes)."""

    def __init__(self, maps: dict[bytes, np.ndarray]) -> None:
        super().__init__(Constant(-10.0), (64, 96), device="cpu")
        self.maps = maps

    def _probabilities(self, images):
        maps = [self.maps[hashlib.sha1(im.tobytes()).digest()].astype(np.float32) for im in images]
        return maps, [float("nan")] * len(maps)

    def bias_px(self, shape):
        return ANNOTATION_BIAS_PX  # its maps are annotations, drawn at the frame's own resolution


def _perfect(n: int, root=None) -> tuple[MapPredictor, list[str], dict]:
    """(perfect predictor, names, {name: (image, mask)}) for the first `n` test-split images
    of `root` (default: the real HC18 folder)."""
    from fetalhead.data import annotation_path, image_path, load_pair, read_training_csv
    from fetalhead.split import load_split

    split = load_split()
    present = set(read_training_csv(root)["filename"])
    names = sorted(f for f in split.loc[split["split"] == "test", "filename"] if f in present)[:n]
    pairs = {n: load_pair(image_path(n, root=root), annotation_path(n, root)) for n in names}
    maps = {hashlib.sha1(im.tobytes()).digest(): m for im, m in pairs.values()}
    return MapPredictor(maps), names, pairs


@pytest.fixture(scope="module")
def truth():
    """`_perfect` for the first 6 test-split images of the real data."""
    if not HC18:
        pytest.skip("HC18_DIR not set")
    return _perfect(6)


# ----------------------------------------------------------------------------- bootstrap, summary


def test_bootstrap_ci_matches_the_normal_approximation():
    v = np.random.default_rng(1).normal(10.0, 2.0, size=400)
    lo, hi = bootstrap_ci(v, n=4000, seed=0)
    half = 1.96 * v.std(ddof=1) / math.sqrt(v.size)  # CLT: the mean's 95 % interval
    assert lo < v.mean() < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    assert (lo + hi) / 2 == pytest.approx(v.mean(), abs=0.1 * half)


def test_bootstrap_ci_is_seeded_and_drops_nans():
    v = np.random.default_rng(2).random(50)
    assert bootstrap_ci(v, seed=3) == bootstrap_ci(v, seed=3)
    assert bootstrap_ci(v, seed=3) != bootstrap_ci(v, seed=4)
    assert bootstrap_ci(np.r_[v, np.nan, np.inf], seed=3) == bootstrap_ci(v, seed=3)
    lo90, hi90 = bootstrap_ci(v, alpha=0.10)
    lo95, hi95 = bootstrap_ci(v, alpha=0.05)
    assert lo95 <= lo90 < hi90 <= hi95
    assert bootstrap_ci([4.0, 4.0, 4.0]) == (4.0, 4.0)
    assert all(math.isnan(x) for x in bootstrap_ci([np.nan]))
    for one in ([5.0], [1.0, np.nan], [1.0, 2.0, 3.0, 4.0]):  # one value, or one examination
        groups = [0] * len(one) if len(one) == 4 else None
        assert all(math.isnan(x) for x in bootstrap_ci(one, groups=groups)), one
    from fetalhead.report import limits_of_agreement

    mean, lo, hi = limits_of_agreement([150.0], [160.0])
    assert mean == -10.0 and math.isnan(lo) and math.isnan(hi)  # one pair has no SD
    with pytest.raises(FetalheadError):
        bootstrap_ci(v, alpha=1.5)


def test_summary_table_columns_and_values():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({m: rng.random(30) for m in ("dice", "iou", "hausdorff_mm")})
    df["hc_error_mm"] = rng.normal(1.0, 2.0, 30)
    df["hc_abs_error_mm"] = df["hc_error_mm"].abs()
    df.loc[3, "hausdorff_mm"] = np.nan
    t = summary_table(df)
    assert list(t.index) == [m for m in SUMMARY_METRICS if m in df.columns]
    assert list(t.columns) == ["mean", "std", "median", "ci_low", "ci_high", "n"]
    for m in t.index:
        v = df[m].dropna()
        assert t.loc[m, "mean"] == pytest.approx(v.mean())
        assert t.loc[m, "std"] == pytest.approx(v.std())
        assert t.loc[m, "median"] == pytest.approx(v.median())
        assert t.loc[m, "n"] == len(v)
        assert t.loc[m, "ci_low"] < t.loc[m, "mean"] < t.loc[m, "ci_high"]


def test_summary_table_counts_the_exams_with_a_finite_value():
    df = pd.DataFrame({"exam": [1, 1, 2, 3], "dice": [0.9, 0.8, 0.7, 0.6],
                       "hausdorff_mm": [1.0, 2.0, np.nan, np.nan]})  # exams 2 and 3: no head
    t = summary_table(df, n_boot=200)
    assert (t.loc["dice", "n"], t.loc["dice", "n_exams"]) == (4, 3)
    assert (t.loc["hausdorff_mm", "n"], t.loc["hausdorff_mm", "n_exams"]) == (2, 1)


def test_summary_table_interval_resamples_exams_at_the_given_alpha():
    # 40 exams of 3 identical frames: the exam interval is much wider than the image one
    per_exam = np.random.default_rng(3).normal(0.0, 2.0, 40)
    df = pd.DataFrame({"hc_error_mm": np.repeat(per_exam, 3), "exam": np.repeat(np.arange(40), 3)})

    def width(table):
        return table.loc["hc_error_mm", "ci_high"] - table.loc["hc_error_mm", "ci_low"]

    assert width(summary_table(df)) > 1.5 * width(summary_table(df.drop(columns="exam")))
    # a 50 % interval of a near-normal mean is z(0.75) / z(0.975) = 0.674 / 1.960 of the 95 % one
    ratio = width(summary_table(df, alpha=0.5)) / width(summary_table(df, alpha=0.05))
    assert ratio == pytest.approx(0.674 / 1.960, rel=0.2)


# ----------------------------------------------------------------------------- evaluate_split


@needs_data
def test_a_perfect_predictor_scores_perfectly(truth):
    from fetalhead.data import read_training_csv

    predictor, names, pairs = truth
    df = evaluate_split(predictor, "test", limit=len(names), progress=False, batch_size=4)
    assert list(df.columns) == EVAL_COLUMNS and list(df["filename"]) == names
    assert (df[["dice", "iou", "pixel_accuracy"]] == 1.0).all().all()
    assert (df[["hausdorff_mm", "assd_mm"]] == 0.0).all().all()
    csv = read_training_csv().set_index("filename")
    for _, row in df.iterrows():
        px = csv.at[row["filename"], "pixel_size_mm"]
        assert row["pixel_size_mm"] == px and row["hc_true_mm"] == csv.at[row["filename"], "hc_mm"]
        mask = pairs[row["filename"]][1]
        # independent: a direct least-squares conic fit to the boundary, SciPy's complete
        # elliptic integral for the perimeter, and the bias as 2 pi x 0.926 px
        a, b = conic_fit_semi_axes(mask)
        perimeter = 4 * a * ellipe(1 - (b / a) ** 2)
        assert row["hc_pred_mm"] == pytest.approx((perimeter - ANNOTATION_BIAS_PX) * px, abs=0.02)
        assert row["hc_error_mm"] == pytest.approx(row["hc_pred_mm"] - row["hc_true_mm"])
    # With the annotation bias removed a filled mask reproduces the CSV to a fraction of a mm.
    assert df["hc_abs_error_mm"].max() < 2.5 and df["hc_abs_error_mm"].mean() < 0.5
    assert (df["status"] == "ok").all()


def test_evaluate_split_with_the_tiny_model(synthetic_tiny):
    root, ckpt = synthetic_tiny
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    df = evaluate_split(predictor, "val", root=root, limit=3, progress=False)
    assert len(df) == 3 and df["dice"].max() > 0.5  # it finds heads
    # every row is scored against its own annotation: recompute Dice from the predictions
    from fetalhead.data import annotation_path, image_path, load_pair
    from fetalhead.metrics import dice

    for row in df.itertuples():
        image, gt = load_pair(image_path(row.filename, root=root), annotation_path(row.filename, root))
        assert row.dice == pytest.approx(dice(predictor.predict(image, row.pixel_size_mm).mask, gt))
    with pytest.raises(FetalheadError, match="unknown part"):
        evaluate_split(predictor, "challenge", root=root)


def test_evaluate_split_scores_only_the_names_given(synthetic_hc18):
    predictor, names, _ = _perfect(3, synthetic_hc18)
    df = evaluate_split(predictor, "test", root=synthetic_hc18, names=[names[-1], names[-1]], progress=False)
    assert len(names) >= 2 and list(df["filename"]) == [names[-1]]  # only those, each once
    from fetalhead.split import load_split

    split = load_split()
    other = split.loc[split["split"] == "val", "filename"].iloc[0]
    with pytest.raises(FetalheadError, match="not labelled images of part 'test'"):
        evaluate_split(predictor, "test", root=synthetic_hc18, names=[names[0], other], progress=False)


def test_write_report_writes_every_file(synthetic_hc18, tmp_path):
    predictor, names, _ = _perfect(3, synthetic_hc18)
    df = evaluate_split(predictor, "test", root=synthetic_hc18, limit=len(names), progress=False)
    out = tmp_path / "report"
    predictor.meta = {**predictor.meta, "training_run": "a_run"}
    written = write_report(df, out, predictor=predictor, root=synthetic_hc18)
    assert sorted(written) == sorted(REPORT_FILES)
    for name in REPORT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    back = pd.read_csv(out / "metrics_per_image.csv")
    assert list(back["filename"]) == names
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == len(names) and summary["n_no_head"] == 0
    assert summary["training_run"] == "a_run"  # the weights measured
    assert summary["metrics"]["dice"]["mean"] == 1.0
    assert summary["hc_interval"]["n_inside"] == summary["hc_interval"]["n"] == len(names)  # exact HCs
    table = pd.read_csv(out / "summary.csv", index_col="metric")
    assert table.loc["dice", "mean"] == 1.0
    page = (out / "index.html").read_text()  # the page shows the report's own figures and table
    assert linked(page) == [
        "figures/eval_examples.png", "figures/eval_bland_altman.png", "figures/eval_dice.png"]
    assert "<td>dice</td><td><b>1.0000</b></td>" in page


def test_evaluate_folder_scores_like_the_split(synthetic_tiny, tmp_path):
    """Your own folder is scored as HC18's split is, image by image; only the reference HC
    differs: the mask's own (less the annotation bias), not the CSV's."""
    import shutil

    from fetalhead.data import annotation_path, image_path, load_mask, read_training_csv
    from fetalhead.ellipse import annotation_bias_mm, hc_from_mask

    root, ckpt = synthetic_tiny
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    split = evaluate_split(predictor, "val", root=root, progress=False)
    px = read_training_csv(root).set_index("filename")["pixel_size_mm"]
    names = list(split["filename"])
    images, masks = [], []
    for k, name in enumerate(names):  # the last one renamed: not an HC18 name, its own examination
        images.append(tmp_path / (name if k < len(names) - 1 else "scan.png"))
        masks.append(tmp_path / "masks" / f"{images[-1].stem}.png")
        masks[-1].parent.mkdir(exist_ok=True)
        shutil.copy(image_path(name, root=root), images[-1])
        shutil.copy(annotation_path(name, root), masks[-1])
    own = evaluate_folder(predictor, images, masks, [px[n] for n in names], progress=False, batch_size=4)
    assert list(own.columns) == EVAL_COLUMNS and len(own) == len(names) >= 3
    assert list(own["filename"]) == [*names[:-1], "scan.png"]
    assert list(own["exam"]) == [*split["exam"][:-1], -len(names)]
    same = [c for c in EVAL_COLUMNS if c not in ("filename", "exam", "hc_true_mm", "hc_error_mm", "hc_abs_error_mm")]
    pd.testing.assert_frame_equal(own[same], split[same])
    reference = [hc_from_mask(load_mask(m), px[n]) - annotation_bias_mm(px[n]) for m, n in zip(masks, names, strict=True)]
    np.testing.assert_allclose(own["hc_true_mm"], reference, rtol=1e-12)
    np.testing.assert_allclose(own["hc_error_mm"], own["hc_pred_mm"] - own["hc_true_mm"], rtol=1e-12)
    np.testing.assert_allclose(own["hc_abs_error_mm"], own["hc_error_mm"].abs(), rtol=1e-12)
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros_like(load_mask(masks[0]))).save(empty)
    with pytest.raises(FetalheadError, match="empty.png: no ellipse"):
        evaluate_folder(predictor, images[:1], [empty], [0.1], progress=False)
    with pytest.raises(FetalheadError, match="2 images, 1 masks"):
        evaluate_folder(predictor, images[:2], masks[:1], [0.1, 0.1], progress=False)


# ----------------------------------------------------------------------------- challenge


def test_predict_challenge_falls_back_but_stays_complete(make_synthetic_hc18):
    from fetalhead.data import image_path, load_image, read_test_csv

    root = make_synthetic_hc18(n_challenge=5)
    df = predict_challenge(Predictor(Constant(-10.0), (64, 96), device="cpu"), root=root, limit=4,
                           progress=False, batch_size=3)
    assert tuple(df.columns) == SUBMISSION_COLUMNS and len(df) == 4
    assert df.attrs["n_fallback"] == 4 and df.attrs["status"] == ["prior"] * 4
    assert np.isfinite(df[list(SUBMISSION_COLUMNS[1:])].to_numpy()).all()
    assert (df["semi_axes_a_mm"] >= df["semi_axes_b_mm"]).all()
    first = read_test_csv(root).iloc[0]
    h, w = load_image(image_path(first["filename"], test_set=True, root=root)).shape
    row = df.iloc[0]
    assert row["center_x_mm"] == pytest.approx((w - 1) / 2 * first["pixel_size_mm"])
    assert row["semi_axes_a_mm"] == pytest.approx(w / 4 * first["pixel_size_mm"])


def test_predict_challenge_lowers_the_threshold_for_weak_heads(synthetic_hc18):
    from fetalhead.data import image_path, load_image, read_test_csv

    table = read_test_csv(synthetic_hc18).head(2)
    maps = {}
    for name in table["filename"]:
        image = load_image(image_path(name, test_set=True, root=synthetic_hc18))
        prob = np.zeros(image.shape, np.float32)
        h, w = image.shape
        prob[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 0.4  # below 0.5, above 0.3
        maps[hashlib.sha1(image.tobytes()).digest()] = prob
    df = predict_challenge(MapPredictor(maps), root=synthetic_hc18, limit=2, progress=False)
    assert df.attrs["status"] == ["low threshold"] * 2 and df.attrs["n_fallback"] == 2
    assert np.isfinite(df[list(SUBMISSION_COLUMNS[1:])].to_numpy()).all()


def test_check_submission_rejects_malformed_tables(synthetic_hc18):
    from fetalhead.data import read_test_csv

    names = read_test_csv(synthetic_hc18)["filename"]
    good = pd.DataFrame({"filename": names, "center_x_mm": 40.0, "center_y_mm": 30.0,
                         "semi_axes_a_mm": 30.0, "semi_axes_b_mm": 20.0, "angle_rad": 0.5})
    check_submission(good, root=synthetic_hc18)
    bad = {
        "columns": good.rename(columns={"angle_rad": "angle"}),
        "rows": good.iloc[:-1],
        "nan": good.assign(center_x_mm=[np.nan] + [1.0] * (len(good) - 1)),
        "a < b": good.assign(semi_axes_b_mm=31.0),
        "angle": good.assign(angle_rad=math.pi),
    }
    for what, df in bad.items():
        with pytest.raises(FetalheadError):
            check_submission(df, root=synthetic_hc18)
            pytest.fail(what)


@needs_data
def test_submission_rows_redraw_the_annotated_heads(truth):
    """Rows of the challenge CSV made from ground-truth-derived predictions, redrawn with
    cv2.ellipse from their millimetres (centre from the top-left pixel's centre, semi-axes,
    angle in radians from +x towards +y), cover the annotation: Dice >= 0.998 (measured 0.9994). The filled
    annotation includes the sonographer's line, ANNOTATION_BIAS_PX / 2 pi = 0.93 px outside
    the ellipse a row describes, so each row is redrawn that much larger. A swapped axis, a
    mirrored angle or a one-pixel shift of the centre fails this."""
    import cv2

    predictor, names, pairs = truth
    csv = read_training_csv_indexed()
    for name in names:
        image, gt = pairs[name]
        px = csv.at[name, "pixel_size_mm"]
        row = challenge_row(name, predictor.predict(image, px).head_ellipse, px)
        assert list(row) == list(SUBMISSION_COLUMNS)
        f, line = 16, ANNOTATION_BIAS_PX / (2 * math.pi)  # cv2.ellipse's fixed point: 4 fractional bits
        drawn = np.zeros(gt.shape, np.uint8)
        cv2.ellipse(drawn, (round(row["center_x_mm"] / px * f), round(row["center_y_mm"] / px * f)),
                    (round((row["semi_axes_a_mm"] / px + line) * f), round((row["semi_axes_b_mm"] / px + line) * f)),
                    math.degrees(row["angle_rad"]), 0, 360, 1, -1, cv2.LINE_8, 4)
        inter = int((drawn.astype(bool) & (gt > 0)).sum())
        assert 2 * inter / (int(drawn.sum()) + int((gt > 0).sum())) >= 0.998, name  # measured: 0.9994


def read_training_csv_indexed():
    from fetalhead.data import read_training_csv

    return read_training_csv().set_index("filename")
