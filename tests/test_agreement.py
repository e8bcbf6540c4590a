"""fetalhead.agreement and `fetalhead compare`: measured HCs against recorded ones, no masks."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from pages import linked
from test_cli import assert_one_line_error, run, snapshot

from fetalhead.agreement import agreement_summary, agreement_table, read_exams, read_predictions
from fetalhead.errors import FetalheadError
from fetalhead.folder import read_hc_csv
from fetalhead.split import SPLIT_FILE


def _predictions(rows: list[tuple[str, str, float, float, float]]) -> pd.DataFrame:
    """predictions.csv rows (filename, status, quality, pixel size mm, HC mm)."""
    return pd.DataFrame(rows, columns=["filename", "status", "quality", "pixel_size_mm", "hc_mm"])


def test_images_pair_by_name_then_stem_and_unrecorded_ones_are_left_out():
    preds = _predictions([("010_HC.png", "ok", 0.9, 0.1, 180.0), ("010_2HC.png", "review", 0.5, 0.1, 190.0),
                          ("scan_a.png", "ok", 1.0, 0.2, 250.0), ("scan_b.dcm", "no head found", math.nan, 0.2, math.nan),
                          ("scan_c.png", "ok", 1.0, 0.2, 200.0), ("scan_d.png", "ok", 1.0, 0.2, 200.0)])
    recorded = {"010_HC.png": 182.5, "010_2HC": 185.0, "scan_a.png": 251.0, "scan_b.dcm": 240.0, "scan_c.png": None}
    table = agreement_table(preds, recorded, exams={"scan_a": "patient 7"})
    assert list(table["filename"]) == ["010_HC.png", "010_2HC.png", "scan_a.png", "scan_b.dcm"]  # c: empty, d: absent
    assert list(table["hc_error_mm"][:3]) == pytest.approx([-2.5, 5.0, -1.0])
    assert list(table["hc_abs_error_mm"][:3]) == pytest.approx([2.5, 5.0, 1.0])
    assert np.isnan(table.loc[3, "hc_pred_mm"]) and np.isnan(table.loc[3, "hc_error_mm"])  # no head: no difference
    exams = list(table["exam"])
    assert exams[0] == exams[1] == "HC18 exam 10"  # the frames of one HC18 exam, from their names
    assert exams[2] == "patient 7"  # the CSV's exam column
    assert exams[3] == "image 4"  # an examination of its own


def test_the_summary_is_what_the_differences_give():
    rng = np.random.default_rng(3)
    n = 40
    px = rng.uniform(0.08, 0.3, n)
    true = rng.uniform(100, 330, n)
    err = rng.normal(0.4, 2.5, n)
    err[[3, 17]] = [9.0, -12.0]  # two gross differences, one of them flagged
    status = np.where(np.arange(n) == 17, "review", "ok").astype(object)
    status[25] = "review"
    status[30] = "no head found"
    pred = np.where(status == "no head found", np.nan, true + err)
    preds = _predictions([(f"img{i:02d}.png", s, 0.5 if s != "ok" else 0.95, p, h)
                          for i, (s, p, h) in enumerate(zip(status, px, pred, strict=True))])
    table = agreement_table(preds, {f"img{i:02d}.png": float(t) for i, t in enumerate(true)})
    s = agreement_summary(table, n_boot=500)
    d = (pred - true)[np.isfinite(pred)]
    assert (s["n_images"], s["n_no_head"], s["n_exams"]) == (40, 1, 40)
    assert s["hc_abs_diff_mm"]["mean"] == pytest.approx(np.abs(d).mean())
    assert s["hc_abs_diff_mm"]["median"] == pytest.approx(np.median(np.abs(d)))
    assert s["hc_diff_mm"]["mean"] == pytest.approx(d.mean())
    lo, hi = s["hc_diff_mm"]["ci"]
    assert lo < d.mean() < hi and hi - lo < 4 * d.std() / math.sqrt(len(d))
    loa = s["limits_of_agreement_mm"]
    assert (loa["low"], loa["high"]) == pytest.approx((d.mean() - 1.96 * d.std(ddof=1), d.mean() + 1.96 * d.std(ddof=1)))
    half = 25.708 * (px + 0.025)  # the published interval, written out
    inside = np.abs(pred - true) <= half
    assert s["interval"]["n_inside"] == int(np.nansum(inside)) and s["interval"]["n"] == 40
    flag = s["review_flag"]
    gross = ~(np.abs(pred - true) <= 6.0)  # more than 6 mm, or no head (30)
    assert gross[[3, 17, 30]].all()
    assert (flag["n_gross"], flag["gross_caught"]) == (gross.sum(), (gross & (status != "ok")).sum())
    assert flag["fraction_set_aside"] == pytest.approx(3 / 40)
    kept = status == "ok"
    assert flag["hc_abs_error_mm_kept"] == pytest.approx(np.abs(pred - true)[kept].mean())


def test_an_empty_table_has_no_summary():
    with pytest.raises(FetalheadError, match="no image has both"):
        agreement_summary(agreement_table(_predictions([("a.png", "ok", 1.0, 0.1, 100.0)]), {}))


def test_the_recorded_hc_csv_reads_hc18s_own_table(hc18_dir):
    csv = hc18_dir / "training_set_pixel_size_and_HC.csv"
    recorded = read_hc_csv(csv)
    hc18 = pd.read_csv(csv)
    assert len(recorded) == len(hc18) == 999
    assert [recorded[n] for n in hc18["filename"]] == list(hc18["head circumference (mm)"])
    assert read_exams(csv) == {}


@pytest.mark.parametrize(("text", "words"), [
    ("filename,hc\na.png,-3\n", "line 2: HC -3 mm is implausible"),
    ("filename,hc\na.png,180\nb.png,lots\n", "line 3: HC 'lots' is not a number"),
    ("filename,hc\na.png,1800\n", "line 2: HC 1800 mm is implausible"),
    ("filename,hc\na.png,nan\n", "line 2: HC nan mm is implausible"),
    ("filename,hc\na.png,180\na.png,181\n", "line 3: a.png is listed twice"),
    ("filename,bpd\na.png,60\n", "no HC column"),
])
def test_a_bad_recorded_hc_is_one_error_naming_its_line(tmp_path, text, words):
    (tmp_path / "hc.csv").write_text(text)
    with pytest.raises(FetalheadError, match=words):
        read_hc_csv(tmp_path / "hc.csv")


def test_recorded_cells_may_be_empty_and_headers_vary(tmp_path):
    (tmp_path / "hc.csv").write_text("image,HC (mm),exam\na.png,180.5,P1\nb.png,,P1\nc.png,201,\n")
    assert read_hc_csv(tmp_path / "hc.csv") == {"a.png": 180.5, "b.png": None, "c.png": 201.0}
    assert read_exams(tmp_path / "hc.csv") == {"a.png": "P1", "b.png": "P1"}


def test_the_hc_column_is_the_one_in_mm_and_one_in_cm_is_refused(tmp_path):
    hc = tmp_path / "hc.csv"
    hc.write_text("filename,hc_centile,hc_mm\na.png,50,180\nb.png,40,201\n,,\n")  # a spreadsheet's last row
    assert read_hc_csv(hc) == {"a.png": 180.0, "b.png": 201.0}
    hc.write_text("filename,HC (cm)\na.png,18.0\n")
    with pytest.raises(FetalheadError, match=r"column 'HC \(cm\)' is in cm; give it in mm"):
        read_hc_csv(hc)


@pytest.mark.parametrize(("row", "words"), [
    ("ok,0.9,abc,150", r"line 3 \(b.png\): pixel size 'abc' is not a number"),
    ("ok,0.9,-0.1,150", r"line 3 \(b.png\): pixel size -0.1 mm must be positive"),
    ("ok,0.9,0.1,abc", r"line 3 \(b.png\): hc_mm 'abc' is not a finite number"),
    ("review,0.2,0.1,inf", r"line 3 \(b.png\): hc_mm inf is not a finite number"),
    ("ok,,0.1,150", r"line 3 \(b.png\): no quality, though its status is ok"),
    ("fine,0.9,0.1,150", r"line 3 \(b.png\): status 'fine' is not ok, review or no head found"),
])
def test_a_cell_that_is_not_a_measurement_is_a_one_line_error(tmp_path, row, words):
    path = tmp_path / "p.csv"
    path.write_text(f"filename,status,quality,pixel_size_mm,hc_mm\na.png,ok,0.9,0.1,150\nb.png,{row}\n")
    with pytest.raises(FetalheadError, match=words):
        read_predictions(path)
    path.write_text("filename,status,quality,pixel_size_mm,hc_mm\na.png,ok,0.9,0.1,150\nb.png,no head found,,0.1,\n")
    assert list(read_predictions(path)["status"]) == ["ok", "no head found"]


def test_file_names_that_look_like_numbers_or_missing_values_stay_names(tmp_path):
    """A DICOM export is often named 0001, 0002, ...: such names are matched as names."""
    (tmp_path / "p.csv").write_text("filename,status,quality,pixel_size_mm,hc_mm\n"
                                    "0001,ok,0.9,0.1,150\nNA,ok,0.9,NA,\n 2 ,ok,0.8,0.1,160\n")
    with pytest.raises(FetalheadError, match=r"line 3 \(NA\): pixel size"):
        read_predictions(tmp_path / "p.csv")  # the other columns' missing cells are still missing
    (tmp_path / "p.csv").write_text("filename,status,quality,pixel_size_mm,hc_mm\n"
                                    "0001,ok,0.9,0.1,150\nNA,ok,0.9,0.1,155\n")
    table = read_predictions(tmp_path / "p.csv")
    assert list(table["filename"]) == ["0001", "NA"] and list(table["hc_mm"]) == [150.0, 155.0]
    (tmp_path / "p.csv").write_text("filename,status,quality,pixel_size_mm,hc_mm\n"
                                    "0001,ok,0.9,0.1,150\nNA,ok,0.9,0.1,155\n,,,,\n")  # a spreadsheet's last row
    assert list(read_predictions(tmp_path / "p.csv")["filename"]) == ["0001", "NA"]
    from pandas._libs.parsers import STR_NA_VALUES

    from fetalhead.data import _MISSING

    assert set(_MISSING) == set(STR_NA_VALUES)  # pandas' own list of missing cells
    (tmp_path / "hc.csv").write_text("filename,hc\n0001,151\nNA,153\n")
    paired = agreement_table(table, read_hc_csv(tmp_path / "hc.csv"))
    assert sorted(paired["filename"]) == ["0001", "NA"]


def test_several_frames_of_a_clip_cannot_meet_one_recorded_hc(tmp_path):
    (tmp_path / "p.csv").write_text("filename,frame,status,quality,pixel_size_mm,hc_mm\n"
                                    "clip.avi,1,ok,1,0.1,180\nclip.avi,2,ok,1,0.1,181\n")
    with pytest.raises(FetalheadError, match="several frames of clip.avi; compare one measurement per image"):
        read_predictions(tmp_path / "p.csv")
    (tmp_path / "q.csv").write_text("filename,status,hc_mm\na.png,ok,180\n")
    with pytest.raises(FetalheadError, match="no column quality, pixel_size_mm"):
        read_predictions(tmp_path / "q.csv")


def test_compare_agrees_with_evaluate_on_hc18_test_images(tmp_path, capfd, hc18_dir):
    """predict on six held-out test images, then compare against HC18's CSV: the per-image
    differences are those `fetalhead evaluate` scores for the same images."""
    split = pd.read_csv(SPLIT_FILE)
    names = sorted(split.loc[split["split"] == "test", "filename"])[:6]
    (tmp_path / "in").mkdir()
    for name in names:
        shutil.copy(hc18_dir / "training_set" / name, tmp_path / "in" / name)
    csv = hc18_dir / "training_set_pixel_size_and_HC.csv"
    code, _, err = run(["predict", tmp_path / "in", "--pixel-csv", csv, "--out", tmp_path / "pred", "--quiet"], capfd)
    assert code == 0, err
    code, said, err = run(["compare", "--predictions", tmp_path / "pred" / "predictions.csv", "--hc-csv", csv,
                           "--out", tmp_path / "agree"], capfd)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "agree" / "compare.csv").set_index("filename")
    code, _, err = run(["evaluate", "--part", "test", "--limit", "6", "--data", hc18_dir, "--out", tmp_path / "eval",
                        "--quiet"], capfd)
    assert code == 0, err
    scored = pd.read_csv(tmp_path / "eval" / "metrics_per_image.csv").set_index("filename")
    assert sorted(table.index) == sorted(scored.index) == names
    assert np.allclose(table.loc[names, "hc_error_mm"], scored.loc[names, "hc_error_mm"], atol=1e-4)
    summary = json.loads((tmp_path / "agree" / "compare.json").read_text())
    assert summary["n_images"] == 6 and summary["hc_abs_diff_mm"]["mean"] == pytest.approx(
        scored["hc_abs_error_mm"].mean(), abs=1e-4)
    assert f"HC mean absolute difference {summary['hc_abs_diff_mm']['mean']:.2f} mm" in said
    assert (tmp_path / "agree" / "bland_altman.png").stat().st_size > 5000
    page = (tmp_path / "agree" / "compare.html").read_text()
    assert f"HC mean absolute difference {summary['hc_abs_diff_mm']['mean']:.2f} mm" in page
    assert linked(page, "href") == ["compare.csv"] and linked(page) == ["bland_altman.png"]
    from fetalhead.predict import Predictor

    weights = Predictor.from_checkpoint().weights  # the best shipped model measured
    assert summary["models"] == [weights] and f"measured by {weights}" in said and f"measured by {weights}" in page


def _compare_case(tmp, name):
    preds = tmp / "p.csv"
    preds.write_text("filename,status,quality,pixel_size_mm,hc_mm\na.png,ok,1,0.1,180\nb.png,ok,1,0.1,200\n")
    hc = tmp / "hc.csv"
    hc.write_text("filename,hc\na.png,181\nb.png,198\n")
    out = tmp / "out"
    argv = ["compare", "--predictions", preds, "--hc-csv", hc, "--out", out]
    if name == "no predictions file":
        preds.unlink()
        return argv, "no such file"
    if name == "no hc csv":
        hc.unlink()
        return argv, "no such file"
    if name == "no image in common":
        hc.write_text("filename,hc\nc.png,181\n")
        return argv, "no image of"
    if name == "bad hc":
        hc.write_text("filename,hc\na.png,181\nb.png,-1\n")
        return argv, "line 3: HC -1 mm is implausible"
    if name == "existing output":
        out.mkdir()
        (out / "compare.csv").write_text("the user's own")
        return argv, "use --overwrite"
    if name == "existing page":
        out.mkdir()
        (out / "compare.html").write_text("a page of the user's own")
        return argv, "compare.html exists"
    if name == "not a predictions file":
        preds.write_text("filename,pixel size(mm)\na.png,0.1\n")
        return argv, "is it the predictions.csv of fetalhead predict?"
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["no predictions file", "no hc csv", "no image in common", "bad hc",
                                  "existing output", "existing page", "not a predictions file"])
def test_compare_bad_input(tmp_path, capfd, name):
    argv, words = _compare_case(tmp_path, name)
    before = snapshot(tmp_path)
    code, _, err = run(argv, capfd)
    assert_one_line_error(code, err, 1, words)
    assert snapshot(tmp_path) == before


def test_compare_into_the_predict_folder_keeps_its_page(tmp_path, capfd):
    argv, _ = _compare_case(tmp_path, "existing output")  # a folder that holds outputs already
    out = tmp_path / "out"
    (out / "compare.csv").unlink()
    (out / "index.html").write_text("the page of fetalhead predict")
    code, _, err = run(argv, capfd)
    assert code == 0, err
    assert (out / "index.html").read_text() == "the page of fetalhead predict"
    assert "HC mean absolute difference" in (out / "compare.html").read_text()


def test_the_page_escapes_what_it_shows():
    from fetalhead.gallery import compare_html

    page = compare_html(["2 images <b>bold</b> & more"], "a&b.csv", ['x"y.png'])
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in page and "<b>bold" not in page
    assert linked(page, "href") == ["a&b.csv"] and linked(page) == ['x"y.png']



@pytest.mark.parametrize(("models", "said"), [("", None), ("m1,m1", "measured by m1"),
                                              ("m1,m2", "measured by 2 models: m1, m2")])
def test_compare_names_the_models_that_measured(tmp_path, capfd, models, said):
    """The predictions.csv's model column: one model, two (rows of two runs put together), or
    none (a table of an older version): compare.json and the summary say so."""
    preds = tmp_path / "p.csv"
    column = "" if not models else ",model"
    values = [""] * 2 if not models else [f",{m}" for m in models.split(",")]
    preds.write_text(f"filename,status,quality,pixel_size_mm,hc_mm{column}\n"
                     f"a.png,ok,1,0.1,180{values[0]}\nb.png,ok,1,0.1,200{values[1]}\n")
    hc = tmp_path / "hc.csv"
    hc.write_text("filename,hc\na.png,181\nb.png,198\n")
    code, out, err = run(["compare", "--predictions", preds, "--hc-csv", hc, "--out", tmp_path / "out"], capfd)
    assert code == 0, err
    record = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert record["models"] == sorted(set(models.split(","))) if models else record["models"] == []
    assert (said in out) if said else ("measured by" not in out)


def test_one_image_has_no_interval_and_no_limits_of_agreement(tmp_path, capfd):
    """One examination cannot vary: the summary says so instead of a zero-width interval."""
    preds, hc = tmp_path / "p.csv", tmp_path / "hc.csv"
    preds.write_text("filename,status,quality,pixel_size_mm,hc_mm\na.png,ok,1,0.1,150\n")
    hc.write_text("filename,hc\na.png,160\n")
    code, out, err = run(["compare", "--predictions", preds, "--hc-csv", hc, "--out", tmp_path / "out"], capfd)
    assert code == 0, err
    assert ("HC mean absolute difference 10.00 mm (no interval from one examination)" in out
            and "-10.00 mm (no interval from one examination); no limits of agreement from one difference" in out)
    assert "nan" not in out
