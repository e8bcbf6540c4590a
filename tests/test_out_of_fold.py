"""Out-of-fold predictions: folds never split an exam, no fold model sees the images it scores,
and every train image is scored exactly once."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scripts import load_benchmark

from fetalhead.data import parse_filename


def _module():
    return load_benchmark("out_of_fold")


def test_folds_deal_whole_exams_evenly():
    exams = np.repeat(np.arange(30), [2 if i % 3 == 0 else 1 for i in range(30)])
    assign = _module().fold_of_exams(exams, 4, seed=0)
    assert sorted(assign) == list(range(30))
    sizes = np.bincount(list(assign.values()), minlength=4)
    assert sizes.max() - sizes.min() <= 1  # exams dealt in turn
    assert assign != _module().fold_of_exams(exams, 4, seed=1)  # the seed shuffles


def test_quick_run_scores_each_train_image_once_with_a_model_that_never_saw_it(
        make_synthetic_hc18, cache_tmp, tmp_path, capsys):
    from fetalhead.cache import load_arrays
    from fetalhead.config import get_config

    mod = _module()
    root = make_synthetic_hc18(size=(64, 96), per_part=4)
    out = tmp_path / "oof"
    stored = tmp_path / "results" / "oof.json"
    stored.parent.mkdir()
    rc = mod.main(["--quick", "--folds", "2", "--seconds", "2", "--out", str(out), "--data", str(root),
                   "--results", str(stored)])
    assert rc == 0
    table = pd.read_csv(out / mod.OOF_CSV)
    cfg = get_config("small", quick=True)
    train = load_arrays("train", size=cfg.image_size, root=root, progress=False)
    assert sorted(table["filename"]) == sorted(train.meta["filename"])  # each once
    assert set(table["fold"]) == {0, 1}
    for k, (fold_train, held_out) in enumerate(mod.fold_sets(train, 2, cfg.seed)):
        assert sorted(table.loc[table["fold"] == k, "filename"]) == held_out
        seen = {parse_filename(n)[0] for n in fold_train.meta["filename"]}
        assert seen.isdisjoint(parse_filename(n)[0] for n in held_out)  # no exam on both sides
        assert (out / f"fold{k}" / "last.pt").is_file()
    assert set(table["status"]) <= {"ok", "review", "no head found"} and "quality" in table
    assert "held-out images" in capsys.readouterr().out
    assert pd.read_csv(stored.with_suffix(".csv")).equals(table)  # the rows beside the summary
    record = json.loads(stored.read_text())
    assert record["n_images"] == len(table) and record["folds"] == 2 and record["commit"]
    assert set(record["review"]) == {"at 0.5", "at most 10% flagged"}
    assert record["review"]["at most 10% flagged"]["n_review"] <= 0.10 * len(table)


def test_review_summary_flags_below_the_threshold_and_keeps_no_head():
    table = pd.DataFrame({"quality": [0.1, 0.2, 0.9, 0.95, 1.0, np.nan],
                          "hc_abs_error_mm": [9.0, 1.0, 7.0, 1.0, 2.0, np.nan],
                          "status": ["ok"] * 5 + ["no head found"], "exam": [1, 2, 3, 4, 5, 6]})
    r = _module().review_summary(table, {"t": 0.5})["t"]
    assert r["review_below"] == 0.5 and r["n_review"] == 2  # the no-head image keeps its own status
    assert r["n_gross"] == 3 and r["gross_caught"] == 2  # 9 mm flagged, no head counts, 7 mm missed
    assert r["hc_abs_error_mm_kept"] == pytest.approx((7.0 + 1.0 + 2.0) / 3)


def test_bad_fold_count_is_one_line_error(tmp_path, capsys):
    rc = _module().main(["--folds", "1", "--out", str(tmp_path / "x")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--folds" in err[0]
    assert not (tmp_path / "x").exists()


def test_evaluating_before_training_is_one_line_error(make_synthetic_hc18, cache_tmp, tmp_path, capsys):
    root = make_synthetic_hc18(size=(64, 96), per_part=4)
    rc = _module().main(["--quick", "--folds", "2", "--stage", "evaluate", "--out", str(tmp_path / "none"),
                         "--data", str(root)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "last.pt" in err[0]


def test_a_stored_result_is_refused_before_any_training(tmp_path, capsys):
    stored = tmp_path / "oof.json"
    stored.write_text("{}")
    rc = _module().main(["--quick", "--out", str(tmp_path / "x"), "--results", str(stored)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "exists" in err[0], err
    assert stored.read_text() == "{}" and not (tmp_path / "x").exists()


def test_an_unknown_preset_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _module().main(["--preset", "huge", "--out", str(tmp_path / "x")])
    assert exit_.value.code == 2 and "invalid choice: 'huge'" in capsys.readouterr().err
