"""A model's review threshold from its scores on unlabelled images: constructed tables where the
threshold is known, the script end to end, its one-line errors, and the shipped models' files
against the stored calibrations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scripts import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def _predictions(scores, review_below: float = 0.28) -> pd.DataFrame:
    """A predictions.csv as `fetalhead predict` writes it (the columns the script reads); a NaN
    score is an image with no head found."""
    scores = np.asarray(scores, float)
    status = np.where(np.isnan(scores), "no head found", np.where(scores < review_below, "review", "ok"))
    return pd.DataFrame({"filename": [f"{i:03d}_HC.png" for i in range(len(scores))], "status": status,
                         "quality": scores, "model": "a_run"})


# 20 images: two weak (0.1, NaN = no head), three middling, the rest sure of themselves
SCORES = [0.1, np.nan, 0.45, 0.62, 0.8] + [1.0] * 15


def test_the_threshold_flags_at_most_the_share_asked_and_no_head_counts_as_zero():
    mod = load_benchmark("review_calibration")
    c = mod.calibration(_predictions(SCORES), max_flagged=0.10)
    # 10 % of 20 is 2: the threshold sits at the third-lowest score (0.45), flagging the NaN and 0.1
    assert c["review_below"] == pytest.approx(0.45) and c["fraction_flagged"] == pytest.approx(2 / 20)
    # as predicted (threshold 0.28): 0.1 under review, the NaN without a head
    assert c["fraction_flagged_as_predicted"] == pytest.approx(2 / 20)
    assert c["n_review_as_predicted"] == 1 and c["n_images"] == 20
    wider = mod.calibration(_predictions(SCORES), max_flagged=0.25)  # 5 of 20: below 1.0, the 0.8 included
    assert wider["review_below"] == pytest.approx(1.0) and wider["fraction_flagged"] == pytest.approx(5 / 20)


def test_the_script_end_to_end_and_it_never_overwrites(tmp_path, capsys):
    mod = load_benchmark("review_calibration")
    table, out = tmp_path / "predictions.csv", tmp_path / "r.json"
    _predictions(SCORES).to_csv(table, index=False)
    assert mod.main(["--predictions", str(table), "--results", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["review_below"] == pytest.approx(0.45) and record["max_flagged"] == 0.10
    assert record["weights"] == "a_run"  # the model whose scores set it
    assert record["score_quantiles"]["0.5"] == 1.0 and "--predictions" in record["command"] and record["date"]
    assert "review below 0.45: 10.0 % of 20 images flagged" in capsys.readouterr().out
    before = out.read_bytes()
    assert mod.main(["--predictions", str(table), "--results", str(out)]) == 2
    assert out.read_bytes() == before


@pytest.mark.parametrize("case", ["missing", "columns", "twice", "empty", "share", "parent", "two models",
                                  "no model"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    mod = load_benchmark("review_calibration")
    table = tmp_path / "predictions.csv"
    rows, share = _predictions(SCORES), "0.1"
    if case == "columns":
        rows = rows.drop(columns="quality")
    if case == "twice":
        rows.loc[1, "filename"] = rows.loc[0, "filename"]
    if case == "empty":
        rows = rows.iloc[:0]
    if case == "two models":
        rows.loc[3, "model"] = "another_run"
    if case == "no model":
        rows["model"] = np.nan
    if case == "share":
        share = "1.5"
    if case != "missing":
        rows.to_csv(table, index=False)
    result = tmp_path / "r.json"
    if case == "parent":  # a file where the results' folder should be
        (tmp_path / "file").write_text("mine")
        result = tmp_path / "file" / "r.json"
    code = mod.main(["--predictions", str(table), "--max-flagged", share, "--results", str(result)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err, err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("name", ["small", "default"])
def test_each_shipped_model_carries_its_stored_calibration(name):
    from fetalhead.checkpoint import read_checkpoint

    record = json.loads((ROOT / "results" / "review" / f"calibration_{name}.json").read_text())
    ckpt = read_checkpoint(ROOT / "fetalhead" / "weights" / f"fetalhead_{name}.pt")
    assert ckpt["review_below"] == record["review_below"]
    assert record["fraction_flagged"] <= record["max_flagged"] and record["n_images"] == 335
