"""The 90 % interval of a measured HC (fetalhead.interval): the conformal factor against its
finite-sample guarantee, the width per pixel size, the Predictor's rows, the calibration script
(benchmarks/hc_interval.py) against its stored record, and its one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scripts import evaluate_table, load_benchmark
from test_predict import ORIG, TRUE, Constant, EllipseLogits, _image

from fetalhead.ellipse import gestational_age_weeks
from fetalhead.errors import FetalheadError
from fetalhead.interval import (
    COVERAGE,
    FACTOR,
    OFFSET_MM,
    conformal_factor,
    half_width_mm,
    inside,
    interval_summary,
)
from fetalhead.predict import Predictor

ROOT = Path(__file__).resolve().parents[1]
STORED = ROOT / "results" / "review" / "hc_interval_small.json"
ROWS = ROOT / "results" / "review" / "out_of_fold_small.csv"


def test_the_factor_is_the_conformal_rank_of_the_scaled_errors():
    errors = np.arange(1.0, 20.0)  # 19 errors: rank ceil(20 x 0.9) = 18
    sizes = np.full(19, 0.1 - OFFSET_MM)  # each scaled by 1 / 0.1 mm
    assert conformal_factor(errors, sizes) == pytest.approx(180.0)
    assert conformal_factor(errors, sizes, coverage=0.5) == pytest.approx(100.0)  # rank 10
    sizes[17] = 0.2 - OFFSET_MM  # error 18 mm on a twice-as-coarse image: ratio 90, so 170 is 18th
    assert conformal_factor(errors, sizes) == pytest.approx(170.0)
    with_missing = errors.copy()
    with_missing[0] = math.nan  # a head not found is as wrong as can be: it takes the top rank
    assert conformal_factor(with_missing, np.full(19, 0.1 - OFFSET_MM)) == pytest.approx(190.0)


def test_new_measurements_lie_inside_as_often_as_promised():
    # exchangeable errors: the chance that a new one lies inside is rank / (n + 1), 181 / 201
    rng = np.random.default_rng(0)
    n, repeats = 200, 4000
    held = []
    for _ in range(repeats):
        sizes = rng.uniform(0.05, 0.3, n + 1)
        errors = np.abs(rng.standard_t(3, n + 1)) * (sizes + OFFSET_MM) * 10.0
        factor = conformal_factor(errors[:n], sizes[:n])
        held.append(errors[n] <= half_width_mm(sizes[n], factor))
    assert np.mean(held) == pytest.approx(181 / 201, abs=0.012)  # 2.5 standard errors


def test_too_few_or_mismatched_errors_are_refused():
    with pytest.raises(FetalheadError, match=r"8 measurements are too few for a 90 % interval \(at least 9 needed\)"):
        conformal_factor(np.ones(8), np.full(8, 0.1))
    assert math.isfinite(conformal_factor(np.ones(9), np.full(9, 0.1)))
    with pytest.raises(FetalheadError, match=r"\(at least 19 needed\)"):
        conformal_factor(np.ones(18), np.full(18, 0.1), coverage=0.95)
    assert math.isfinite(conformal_factor(np.ones(19), np.full(19, 0.1), coverage=0.95))
    with pytest.raises(FetalheadError, match="3 errors for 2 pixel sizes"):
        conformal_factor(np.ones(3), np.ones(2))
    with pytest.raises(FetalheadError, match="coverage"):
        conformal_factor(np.ones(30), np.ones(30), coverage=1.0)


def test_the_width_grows_with_the_pixel_size():
    assert half_width_mm(0.1) == pytest.approx(FACTOR * (0.1 + OFFSET_MM))
    w = half_width_mm(np.array([0.05, 0.1, 0.2]), factor=10.0, offset_mm=0.02)
    assert w.tolist() == pytest.approx([0.7, 1.2, 2.2])


def test_a_prediction_carries_its_interval_into_its_row():
    px = 0.12
    p = Predictor(EllipseLogits(TRUE, ORIG), (64, 96), device="cpu", review_below=0.0).predict(_image(), px)
    low, high = p.hc_interval_mm
    assert (high - low) / 2 == pytest.approx(FACTOR * (px + OFFSET_MM)) and (low + high) / 2 == pytest.approx(p.hc_mm)
    row = p.to_row()
    assert (row["hc_low_mm"], row["hc_high_mm"]) == (low, high)
    assert row["ga_low_weeks"] < p.ga_weeks < row["ga_high_weeks"]  # the ages of the interval's ends
    assert (row["ga_low_weeks"], row["ga_high_weeks"]) == (gestational_age_weeks(low)[0], gestational_age_weeks(high)[0])
    none = Predictor(Constant(-10.0), (64, 96), device="cpu").predict(_image(), px)
    assert all(math.isnan(v) for v in (*none.hc_interval_mm, none.to_row()["hc_low_mm"], none.to_row()["ga_high_weeks"]))


def test_coverage_of_a_table_counts_a_missing_head_outside():
    df = pd.DataFrame({"exam": [1, 1, 2, 3, 4, 5], "pixel_size_mm": [0.1, 0.1, 0.2, 0.2, 0.3, 0.3],
                       "hc_abs_error_mm": [1.0, 3.0, 3.0, 5.0, math.nan, 1.0],
                       "status": ["ok", "review", "ok", "ok", "no head found", "review"]})
    # half-widths with factor 20, offset 0: 2, 2, 4, 4, 6, 6 mm
    assert inside(df, factor=20.0, offset_mm=0.0).tolist() == [True, False, True, False, False, True]
    s = interval_summary(df, factor=20.0, offset_mm=0.0, n_boot=200)
    assert (s["n"], s["n_inside"], s["coverage"]) == (6, 3, 0.5)
    assert s["coverage_by_third"] == [0.5, 0.5, 0.5] and s["median_half_width_mm"] == pytest.approx(4.0)
    assert 0.0 <= s["coverage_ci"][0] <= 0.5 <= s["coverage_ci"][1] <= 1.0
    assert s["by_status"] == {"ok": {"n": 3, "n_inside": 2}, "review": {"n": 2, "n_inside": 1},
                              "no head found": {"n": 1, "n_inside": 0}}
    assert "by_status" not in interval_summary(df.drop(columns="status"), n_boot=10)


def test_cross_fold_coverage_and_the_offset_chosen():
    mod = load_benchmark("hc_interval")
    rng = np.random.default_rng(1)
    sizes = rng.uniform(0.05, 0.3, 600)
    rows = pd.DataFrame({"pixel_size_mm": sizes, "fold": np.arange(600) % 3,
                         "hc_abs_error_mm": np.abs(rng.normal(size=600)) * 20 * sizes})  # error grows with p
    flat, grows = mod.cross_fold(rows, math.inf), mod.cross_fold(rows, 0.0)
    assert flat["coverage"] == pytest.approx(0.9, abs=0.03) and grows["coverage"] == pytest.approx(0.9, abs=0.03)
    # a constant width covers the fine third too often and the coarse third too rarely
    assert flat["coverage_by_third"][0] > 0.97 and flat["coverage_by_third"][2] < 0.8
    assert grows["worst_third_gap"] < flat["worst_third_gap"]
    table = {"0.0": {"worst_third_gap": 0.03}, "0.05": {"worst_third_gap": 0.01},
             "0.1": {"worst_third_gap": 0.01}, "inf": {"worst_third_gap": 0.0}}
    assert mod.choose_offset(table) == 0.05  # the constant is a reference, never chosen


def test_the_script_gives_the_library_its_constants(tmp_path, capsys):
    mod = load_benchmark("hc_interval")
    stored = json.loads(STORED.read_text())
    assert (stored["offset_mm"], round(stored["factor"], 3), stored["coverage_aimed"]) == (OFFSET_MM, FACTOR, COVERAGE)
    out = tmp_path / "interval.json"
    assert mod.main(["--rows", str(ROWS), "--results", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["n_rows"] == stored["n_rows"] == 693
    assert got["factor"] == pytest.approx(stored["factor"], rel=1e-12) and got["offset_mm"] == stored["offset_mm"]
    for offset, result in stored["offsets_mm"].items():
        for field, value in result.items():
            assert got["offsets_mm"][offset][field] == pytest.approx(value, rel=1e-12), (offset, field)
    said = capsys.readouterr()
    assert f"offset {OFFSET_MM:g} mm, factor {FACTOR:.3f}" in said.out and not said.err
    before = out.read_bytes()
    assert mod.main(["--rows", str(ROWS), "--results", str(out)]) == 2  # never replaces a result
    assert out.read_bytes() == before


def test_a_check_table_is_measured_with_the_librarys_interval(tmp_path):
    mod = load_benchmark("hc_interval")
    table = evaluate_table(pd.DataFrame({"filename": ["a.png", "b.png", "c.png"], "exam": [1, 2, 3],
                                         "pixel_size_mm": [0.1, 0.1, 0.2], "hc_abs_error_mm": [0.5, 9.0, 2.0],
                                         "status": ["ok", "review", "ok"]}), tmp_path / "mine", "mine_run")
    out = tmp_path / "r.json"
    assert mod.main(["--rows", str(ROWS), "--check", f"mine={table}", "--results", str(out)]) == 0
    check = json.loads(out.read_text())["checks"]["mine"]
    assert (check["n"], check["n_inside"], check["table"], check["weights"]) == (3, 2, str(table), "mine_run")
    assert check["by_status"] == {"ok": {"n": 2, "n_inside": 2}, "review": {"n": 1, "n_inside": 0}}


@pytest.mark.parametrize("case", ["missing", "columns", "empty", "check"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    mod = load_benchmark("hc_interval")
    rows = tmp_path / "rows.csv"
    extra = []
    if case == "columns":
        rows.write_text("filename,pixel_size_mm\n001_HC.png,0.1\n")
    elif case == "empty":
        rows.write_text("filename,exam,pixel_size_mm,hc_abs_error_mm,fold\n")
    elif case == "check":
        rows, extra = ROWS, ["--check", "no-equals-sign"]
    assert mod.main(["--rows", str(rows), *extra, "--results", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert ("NAME=FILE" in err[0]) if case == "check" else ("rows.csv" in err[0])
    assert not (tmp_path / "r.json").exists()
