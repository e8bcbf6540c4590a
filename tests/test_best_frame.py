"""The frame `predict --frame best` keeps, against a frame at random: constructed examinations
where the right answer is known, the script end to end, and its one-line errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scripts import evaluate_table, load_benchmark

from fetalhead.predict import best_measurement

NAN = math.nan


def _rows() -> pd.DataFrame:
    """Exam 1: three ok frames, the most trusted (quality 1.0) the worst measured; exam 2: a
    flagged frame of higher quality and an ok one; exam 3: one frame (left out); exam 4: a frame
    without a head beside a measured one."""
    return pd.DataFrame({
        "filename": ["001_HC.png", "001_2HC.png", "001_3HC.png", "002_HC.png", "002_2HC.png", "003_HC.png",
                     "004_HC.png", "004_2HC.png"],
        "exam": [1, 1, 1, 2, 2, 3, 4, 4],
        "status": ["ok", "ok", "ok", "review", "ok", "ok", "no head found", "ok"],
        "quality": [0.9, 1.0, 0.95, 0.99, 0.8, 1.0, NAN, 0.7],
        "hc_abs_error_mm": [1.0, 5.0, 3.0, 8.0, 2.0, 0.5, NAN, 4.0],
    })


def test_the_ok_frame_of_highest_quality_is_chosen_the_first_of_equals():
    rows = _rows().to_dict("records")
    assert best_measurement(rows[:3])["filename"] == "001_2HC.png"
    assert best_measurement(rows[3:5])["filename"] == "002_2HC.png"  # ok before a flagged frame
    assert best_measurement(rows[6:8])["filename"] == "004_2HC.png"
    assert best_measurement(rows[6:7]) is None
    tie = [dict(rows[0], quality=1.0), dict(rows[1], quality=1.0)]
    assert best_measurement(tie)["filename"] == "001_HC.png"


def test_per_exam_and_summary():
    mod = load_benchmark("best_frame")
    exams = mod.per_exam(_rows())
    assert list(exams["exam"]) == [1, 2, 4]  # exam 3 has one frame
    assert list(exams["chosen"]) == [5.0, 2.0, 4.0]
    assert list(exams["random"]) == pytest.approx([3.0, 5.0, 4.0])  # exam 4: its measured frame only
    assert list(exams["best"]) == [1.0, 2.0, 4.0] and list(exams["worst"]) == [5.0, 8.0, 4.0]
    s = mod.summary(exams, n_boot=200)
    assert (s["n_exams"], s["n_frames"]) == (3, 7)
    assert s["hc_abs_error_mm_chosen"] == pytest.approx(11 / 3) and s["hc_abs_error_mm_random"] == pytest.approx(4.0)
    assert s["chosen_minus_random_mm"] == pytest.approx((2.0 - 3.0 + 0.0) / 3)
    assert (s["n_chosen_better"], s["n_chosen_worse"]) == (1, 1)
    lo, hi = s["chosen_minus_random_ci"]
    assert lo <= s["chosen_minus_random_mm"] <= hi


def test_the_script_end_to_end(tmp_path, capsys):
    mod = load_benchmark("best_frame")
    table, other, out = evaluate_table(_rows(), tmp_path / "a"), evaluate_table(_rows(), tmp_path / "b", "b_run"), tmp_path / "r.json"
    assert mod.main(["--check", f"a={table}", "--check", f"b={other}", "--results", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["a"]["n_exams"] == record["b"]["n_exams"] == 3 and record["tables"]["a"] == str(table)
    assert record["weights"] == {"a": "a_run", "b": "b_run"}  # which weights each table measured
    assert "--check" in record["command"] and record["date"]
    said = capsys.readouterr().out
    assert "a: 3 examinations of 7 frames: chosen frame 3.67 mm, a frame at random 4.00 mm" in said
    assert mod.main(["--check", f"a={table}", "--results", str(out)]) == 2  # never overwrites


@pytest.mark.parametrize("case", ["missing", "columns", "no name", "names repeat", "no exam of frames", "no weights"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    mod = load_benchmark("best_frame")
    table = evaluate_table(_rows().head(0), tmp_path)
    if case == "no weights":
        (tmp_path / "summary.json").unlink()
    rows = _rows()
    if case == "columns":
        rows = rows.drop(columns="quality")
    if case == "no exam of frames":
        rows = rows.assign(exam=np.arange(len(rows)))
    if case == "missing":
        table.unlink()
    else:
        rows.to_csv(table, index=False)
    checks = {"no name": [f"={table}"], "names repeat": [f"a={table}", f"a={table}"]}.get(case, [f"a={table}"])
    argv = [a for c in checks for a in ("--check", c)] + ["--results", str(tmp_path / "r.json")]
    try:
        code = mod.main(argv)
    except SystemExit as e:  # argparse's own: a malformed --check
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and "error: " in err and "\n" not in err and "Traceback" not in err, err
    assert not (tmp_path / "r.json").exists()
