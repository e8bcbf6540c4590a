"""Disagreement signals on out-of-fold predictions: the AUC, the joined score, catches counted
only on folds the choice never saw, and the script end to end on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scripts import load_benchmark


def test_auc_by_hand():
    mod = load_benchmark("review_signals")
    y = np.array([0, 0, 1, 1], bool)
    assert mod.auc(y, [1, 2, 3, 4]) == pytest.approx(1.0)
    assert mod.auc(y, [4, 3, 2, 1]) == pytest.approx(0.0)
    assert mod.auc(y, [1, 1, 1, 1]) == pytest.approx(0.5)  # ties count half
    assert mod.auc(y, [1, 3, 2, 4]) == pytest.approx(0.75)  # 3 of the 4 pairs in order
    assert np.isnan(mod.auc(np.zeros(3, bool), [1, 2, 3]))


def test_joined_score_is_the_smaller_and_an_infinite_scale_leaves_the_score():
    mod = load_benchmark("review_signals")
    score = np.array([0.9, 0.2, np.nan])
    signal = np.array([3.0, 0.0, 0.0])
    assert mod.joined_score(score, signal, 6.0) == pytest.approx([0.5, 0.2, 0.0])
    assert mod.joined_score(score, signal, float("inf")) == pytest.approx([0.9, 0.2, 0.0])
    assert mod.joined_score(score, np.array([30.0, 0, 0]), 6.0)[0] == 0.0  # clipped


def _table(seed: int = 0) -> pd.DataFrame:
    """3 folds of 60 images, 2 gross errors each, which the quality score rates well (0.9) and
    the signal (5 mm against 0.2) gives away."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(3):
        for i in range(60):
            gross = i < 2
            rows.append({"fold": k, "hc_abs_error_mm": 9.0 if gross else 1.0,
                         "quality": 0.9 if gross else rng.uniform(0.3, 1.0),
                         "signal": 5.0 if gross else 0.2})
    return pd.DataFrame(rows)


def test_nested_catches_find_what_the_signal_gives_away_and_the_score_misses():
    mod = load_benchmark("review_signals")
    table = _table()
    alone = mod.nested_catches(table, None)
    joined = mod.nested_catches(table, "signal")
    assert alone["n_gross"] == joined["n_gross"] == 6
    assert alone["caught"] == 0 and joined["caught"] == 6
    assert [f["fold"] for f in joined["folds"]] == [0, 1, 2]
    assert sum(f["caught"] for f in joined["folds"]) == joined["caught"]
    assert all(f["f_mm"] is not None and f["f_mm"] <= 5.0 for f in joined["folds"])  # a scale that binds
    assert all(f["f_mm"] is None for f in alone["folds"])
    assert joined["flagged"] <= 0.12 * len(table)  # thresholds at the other folds' 10 % quantile


def test_a_signal_that_only_helps_on_one_fold_is_not_counted_there():
    """Fold 2's gross errors are given away by the signal, the other folds' are not: a scale
    chosen without fold 2 cannot have been fitted to it (the inner folds show no gain), so the
    joined score catches nothing more than the score alone on fold 2."""
    mod = load_benchmark("review_signals")
    table = _table()
    table.loc[(table["fold"] != 2) & (table["hc_abs_error_mm"] > 6), "signal"] = 0.2
    joined = mod.nested_catches(table, "signal")
    assert joined["folds"][2]["f_mm"] is None and joined["folds"][2]["caught"] == 0


def test_extra_passes_measure_the_same_head_again_and_the_second_model_apart():
    """A fake network that draws a fixed ellipse whatever the input: mirrored and rescaled passes
    find the same head (HC within a pixel's worth); a second network drawing a head 10 % larger
    differs by its circumference."""
    from test_predict import EllipseLogits

    from fetalhead.ellipse import Ellipse
    from fetalhead.predict import Predictor

    mod = load_benchmark("review_signals")
    orig = (120, 180)
    head, bigger = Ellipse(95.0, 60.0, 60.0, 40.0, 0.3), Ellipse(95.0, 60.0, 66.0, 44.0, 0.3)
    first = Predictor(EllipseLogits(head, orig), (64, 96), bias_correction=False)
    second = Predictor(EllipseLogits(bigger, orig), (64, 96), bias_correction=False)
    image = np.random.default_rng(0).integers(0, 256, orig, dtype=np.uint8)  # not blank
    px = 0.2
    plain = first.predict(image, px).hc_mm
    [row] = mod.extra_passes(first, [image], [px], second)
    assert plain == pytest.approx(head.circumference * px, rel=0.02)
    assert row["hc_mirrored_mm"] == pytest.approx(plain, abs=px * 2)
    assert row["hc_rescaled_mm"] == pytest.approx(plain, abs=px * 2)
    assert row["hc_second_mm"] - plain == pytest.approx((bigger.circumference - head.circumference) * px, rel=0.05)
    assert np.isnan(mod.extra_passes(first, [image], [px])[0]["hc_second_mm"])


def test_the_script_end_to_end_on_tiny_models(make_synthetic_hc18, cache_tmp, tmp_path, capsys):
    oof, mod = load_benchmark("out_of_fold"), load_benchmark("review_signals")
    root = make_synthetic_hc18(size=(64, 96), per_part=4)
    out = tmp_path / "oof"
    assert oof.main(["--quick", "--folds", "2", "--seconds", "2", "--out", str(out), "--data", str(root)]) == 0
    stored = tmp_path / "results" / "signals.json"
    stored.parent.mkdir()
    rc = mod.main(["--rows", str(out / oof.OOF_CSV), "--models", str(out), "--second", str(out),
                   "--data", str(root), "--results", str(stored)])
    assert rc == 0
    table = pd.read_csv(stored.with_suffix(".csv"))
    rows = pd.read_csv(out / oof.OOF_CSV)
    assert list(table["filename"]) == list(rows["filename"])  # the same rows, signals added
    found = table["hc_pred_mm"].notna()
    assert (table.loc[found, "second_model_hc_mm"] == 0).all()  # a model is its own second
    for signal, column in mod.SIGNALS.items():
        # |extra pass - plain pass|; NaN where the extra pass found no head (the catches count
        # it as the largest disagreement). Tiny models trained for 2 s may well find none.
        both = found & table[column].notna()
        assert np.allclose(table.loc[both, signal], (table[column] - table["hc_pred_mm"]).abs()[both])
        assert table.loc[~both, signal].isna().all()
    record = json.loads(stored.read_text())
    assert record["n_images"] == len(rows) and record["commit"]
    assert set(record["caught"]) == {"quality score alone", "quality score and mirrored_hc_mm",
                                     "quality score and rescaled_hc_mm", "quality score and second_model_hc_mm"}
    assert record["second_model"]["n_gross"]["both"] == record["second_model"]["n_gross"]["first model"]
    assert "fold by fold" in capsys.readouterr().out


@pytest.mark.parametrize("what", ["rows", "models"])
def test_missing_inputs_are_one_line_errors(make_synthetic_hc18, tmp_path, capsys, what):
    mod = load_benchmark("review_signals")
    rows = tmp_path / "rows.csv"
    if what == "models":
        pd.DataFrame({"filename": ["001_HC.png"], "pixel_size_mm": [0.1], "fold": [0]}).to_csv(rows, index=False)
    result = tmp_path / "r.json"
    rc = mod.main(["--rows", str(rows), "--models", str(tmp_path / "none"), "--results", str(result),
                   "--data", str(make_synthetic_hc18(size=(64, 96), per_part=2))])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    assert not result.exists()


def test_a_stored_result_is_never_replaced(tmp_path, capsys):
    mod = load_benchmark("review_signals")
    rows, result = tmp_path / "rows.csv", tmp_path / "r.json"
    pd.DataFrame({"filename": ["001_HC.png"], "pixel_size_mm": [0.1], "fold": [0]}).to_csv(rows, index=False)
    result.write_text("{}")
    rc = mod.main(["--rows", str(rows), "--models", str(tmp_path / "none"), "--results", str(result)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "exists" in err[0], err
    assert result.read_text() == "{}"
