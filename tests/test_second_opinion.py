"""A second network's HC as a review signal: constructed tables where the right flags are known,
the script end to end, and its one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scripts import evaluate_table, load_benchmark


def _rows(hc_pred, hc_true, status=None) -> pd.DataFrame:
    """A per-image table as `fetalhead evaluate` writes it (the columns the script reads)."""
    hc_pred, hc_true = np.asarray(hc_pred, float), np.asarray(hc_true, float)
    n = len(hc_pred)
    return pd.DataFrame({
        "filename": [f"{i:03d}_HC.png" for i in range(n)], "exam": np.arange(n),
        "hc_pred_mm": hc_pred, "hc_error_mm": hc_pred - hc_true, "hc_abs_error_mm": np.abs(hc_pred - hc_true),
        "status": status if status is not None else ["ok"] * n,
    })


TRUE = [100.0, 150.0, 200.0, 250.0, 300.0]


def test_a_disagreement_beyond_the_limit_flags_and_catches_the_gross_error():
    mod = load_benchmark("second_opinion")
    rows = _rows([100.5, 159.0, 201.0, 250.0, 300.0], TRUE)  # image 1: +9 mm, a clean-looking gross error
    other = _rows([101.0, 150.5, 196.0, 250.2, 299.0], TRUE)  # agrees on 0, 3, 4; 5 mm apart on 2
    joined = mod.with_second_opinion(rows, other, limit_mm=6.0)
    assert joined["disagreement_mm"].to_numpy() == pytest.approx([0.5, 8.5, 5.0, 0.2, 1.0])
    assert joined["status"].tolist() == ["ok", "review", "ok", "ok", "ok"]  # 5 mm is not beyond 6
    alone, both = mod.flag_summary(rows), mod.flag_summary(joined)
    assert (alone["gross_caught"], both["gross_caught"], both["n_gross"]) == (0, 1, 1)
    assert both["fraction_set_aside"] == pytest.approx(1 / 5)
    assert both["hc_abs_error_mm_kept"] == pytest.approx(np.mean([0.5, 1.0, 0.0, 0.0]))


def test_no_head_from_the_second_model_is_a_disagreement_and_statuses_already_set_stay():
    mod = load_benchmark("second_opinion")
    rows = _rows([100.0, 150.0, np.nan, 250.0, 300.0], TRUE, ["ok", "review", "no head found", "ok", "ok"])
    other = _rows([np.nan, 150.0, 200.0, 250.0, 300.0], TRUE)
    joined = mod.with_second_opinion(rows, other)
    assert joined["status"].tolist() == ["review", "review", "no head found", "ok", "ok"]
    assert np.isinf(joined["disagreement_mm"].iloc[0]) and np.isinf(joined["disagreement_mm"].iloc[2])


def test_the_images_are_matched_by_name_not_by_order():
    mod = load_benchmark("second_opinion")
    rows = _rows([100.0, 150.0, 200.0, 250.0, 300.0], TRUE)
    other = _rows([100.0, 150.0, 200.0, 250.0, 320.0], TRUE).iloc[::-1].reset_index(drop=True)
    joined = mod.with_second_opinion(rows, other)
    assert joined["status"].tolist() == ["ok", "ok", "ok", "ok", "review"]


def test_error_correlation():
    mod = load_benchmark("second_opinion")
    rows = _rows([101.0, 148.0, 203.0, 249.0, 300.0], TRUE)
    assert mod.error_correlation(rows, rows) == pytest.approx(1.0)
    flipped = _rows([99.0, 152.0, 197.0, 251.0, 300.0], TRUE)
    assert mod.error_correlation(rows, flipped) == pytest.approx(-1.0)


def test_the_script_end_to_end(tmp_path, capsys):
    mod = load_benchmark("second_opinion")
    a = evaluate_table(_rows([100.5, 159.0, 201.0, 250.0, 300.0], TRUE), tmp_path / "a", "a_run")
    b = evaluate_table(_rows([101.0, 150.5, 196.0, 250.2, 299.0], TRUE), tmp_path / "b", "b_run")
    out = tmp_path / "r.json"
    assert mod.main(["--rows", str(a), "--other", str(b), "--results", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["weights"] == {"rows": "a_run", "other": "b_run"}  # which weights each table measured
    assert record["flag alone"]["gross_caught"] == 0 and record["flag or second opinion"]["gross_caught"] == 1
    assert record["limit_mm"] == 6.0 and "--other" in record["command"] and record["date"]
    assert "1 of 1 gross errors caught" in capsys.readouterr().out
    assert mod.main(["--rows", str(a), "--other", str(b), "--results", str(out)]) == 2  # never overwrites


@pytest.mark.parametrize("case", ["missing", "columns", "names", "limit", "no weights"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    mod = load_benchmark("second_opinion")
    a = evaluate_table(_rows([100.0, 150.0, 200.0, 250.0, 300.0], TRUE), tmp_path / "a")
    b = evaluate_table(_rows([100.0, 150.0, 200.0, 250.0, 300.0], TRUE).head(0), tmp_path / "b")
    if case == "no weights":
        (tmp_path / "b" / "summary.json").write_text("{}")
    other = _rows([100.0, 150.0, 200.0, 250.0, 300.0], TRUE)
    limit = "6"
    if case == "columns":
        other = other.drop(columns="hc_pred_mm")
    if case == "names":
        other.loc[0, "filename"] = "999_HC.png"
    if case == "limit":
        limit = "-1"
    if case == "missing":
        b.unlink()
    else:
        other.to_csv(b, index=False)
    code = mod.main(["--rows", str(a), "--other", str(b), "--limit-mm", limit, "--results", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err
    assert not (tmp_path / "r.json").exists()
