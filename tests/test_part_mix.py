"""The HC error each part's mix of pixel sizes predicts (benchmarks/part_mix.py): bands and
weights on constructed tables, the script on the real split against its stored record, and its
one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scripts import load_benchmark

from fetalhead.errors import FetalheadError

ROOT = Path(__file__).resolve().parents[1]
HC18 = os.environ.get("HC18_DIR")
STORED = ROOT / "results" / "review" / "part_mix_small.json"
ROWS = ROOT / "results" / "review" / "out_of_fold_small.csv"


def test_bands_hold_their_upper_edge():
    mod = load_benchmark("part_mix")
    sizes = [0.05, 0.1, 0.1001, 0.125, 0.15, 0.2, 0.25, 0.2501, 0.39]
    assert mod.band_of(np.array(sizes)).tolist() == [0, 0, 1, 1, 2, 3, 4, 5, 5]


def test_each_part_weighs_the_band_errors_by_its_own_shares():
    mod = load_benchmark("part_mix")
    edges = (0.0, 0.1, 0.2, 1.0)
    rows = pd.DataFrame({"filename": ["a", "b", "c", "d"], "pixel_size_mm": [0.05, 0.08, 0.15, 0.12],
                         "hc_abs_error_mm": [1.0, 3.0, 4.0, 6.0]})  # band 0: mean 2; band 1: mean 5
    parts = pd.DataFrame({"split": ["fine"] * 4 + ["mixed"] * 4,
                          "pixel_size_mm": [0.05] * 4 + [0.09, 0.1, 0.11, 0.19]})
    got = mod.expected_errors(rows, parts, edges)
    assert got["out_of_fold"]["n_per_band"] == [2, 2, 0] and got["out_of_fold"]["mae_mm"] == pytest.approx(3.5)
    assert got["fine"]["expected_mae_mm"] == pytest.approx(2.0) and got["fine"]["share_per_band"] == [1, 0, 0]
    assert got["mixed"]["expected_mae_mm"] == pytest.approx(0.5 * 2 + 0.5 * 5) and got["mixed"]["n"] == 4
    coarse = pd.DataFrame({"split": ["coarse"], "pixel_size_mm": [0.3]})
    with pytest.raises(FetalheadError, match=r"part coarse: images with pixel sizes in \(0.2, 1\] mm"):
        mod.expected_errors(rows, coarse, edges)


@pytest.mark.skipif(not HC18, reason="HC18_DIR not set")
def test_the_script_on_the_split_equals_its_stored_record(tmp_path, capsys):
    mod = load_benchmark("part_mix")
    out = tmp_path / "mix.json"
    assert mod.main(["--rows", str(ROWS), "--results", str(out)]) == 0
    got, stored = json.loads(out.read_text()), json.loads(STORED.read_text())
    assert {k: got[k]["n"] for k in ("train", "val", "test", "challenge")} == {
        "train": 693, "val": 146, "test": 160, "challenge": 335}
    # the out-of-fold rows are the train part: its own mix gives back their mean
    assert got["train"]["expected_mae_mm"] == pytest.approx(got["out_of_fold"]["mae_mm"], rel=1e-12)
    for key in ("out_of_fold", "train", "val", "test", "challenge"):
        for field, value in got[key].items():
            assert value == pytest.approx(stored[key][field], rel=1e-12), (key, field)
    assert "val 1.92, test 1.98" in capsys.readouterr().out
    before = out.read_bytes()
    assert mod.main(["--rows", str(ROWS), "--results", str(out)]) == 2  # never replaces a result
    assert out.read_bytes() == before


@pytest.mark.parametrize("case", ["missing", "columns", "empty"])
def test_bad_rows_are_one_line_and_exit_2(tmp_path, capsys, case):
    mod = load_benchmark("part_mix")
    rows = tmp_path / "rows.csv"
    if case == "columns":
        rows.write_text("filename,pixel_size_mm\n001_HC.png,0.1\n")
    elif case == "empty":
        rows.write_text("filename,pixel_size_mm,hc_abs_error_mm\n")
    assert mod.main(["--rows", str(rows), "--results", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "rows.csv" in err[0]
    assert not (tmp_path / "r.json").exists()
