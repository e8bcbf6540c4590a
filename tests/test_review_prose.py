"""The prose on the review flag: quoted from constructed stored results (out-of-fold summaries,
calibrations, second opinions), wrapped as Markdown bullets, and held to the weights files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fetalhead.errors import FetalheadError
from fetalhead.paths import SHIPPED_MODELS
from fetalhead.results import write_results
from fetalhead.review_prose import (
    CALIBRATION_FILE,
    calibration,
    review_limitation,
    review_text,
    wrap,
)


def _stored_review(folder, best_other: int) -> None:
    """Constructed out-of-fold summaries: 40 images, 4 gross errors (3 clean ellipses, 1 on the
    largest fifth of heads), the flag catching 3; the best second opinion catching `best_other`."""
    (folder / "review").mkdir()
    hc = np.arange(100.0, 300.0, 5.0)  # 40 heads; the largest fifth: > 260 mm
    err = np.full(40, 1.0)
    err[[0, 1, 25, 39]] = 8.0
    iou = np.full(40, 0.98)
    iou[0] = 0.90
    pd.DataFrame({"hc_true_mm": hc, "hc_abs_error_mm": err, "q_ellipse_iou": iou}).to_csv(
        folder / "review" / "out_of_fold_small.csv", index=False)
    flag = {"review_below": 0.31, "fraction_set_aside": 0.0952, "gross_caught": 3, "n_gross": 4}
    half = {"fraction_set_aside": 0.125, "gross_caught": 4, "n_gross": 4}
    write_results({"review": {"at 0.5": half, "at most 10% flagged": flag}, "n_images": 40, "folds": 5,
                   "preset": "tiny", "command": "python oof --x"}, folder / "review" / "out_of_fold_small.json")
    second = {"hc_error_correlation": 0.876, "n_gross": {"first model": 4, "second model": 6, "both": 3}}
    caught = {"quality score alone": {"caught": 2, "n_gross": 4}, "quality score and a": {"caught": best_other, "n_gross": 4}}
    write_results({"second_model": second, "caught": caught, "rescale": 1.5}, folder / "review" / "signals_small.json")


def test_the_review_paragraphs_quote_the_stored_out_of_fold_summaries(tmp_path):
    _stored_review(tmp_path, best_other=2)
    card = " ".join(review_limitation(tmp_path).split())
    assert "a flag on 10 % of the images caught 3 of 4 gross errors" in card
    assert "made 3 of the same 4 gross errors" in card and "correlate 0.88" in card
    assert card.startswith("- ") and "results/review/signals_small.json" in card
    text = " ".join(review_text(tmp_path).split())
    assert "On 40 out-of-fold predictions of the train part (5 models of the tiny preset" in text
    assert "`python oof --x`), the largest threshold that flags at most 10 % of them (0.31)" in text
    assert "caught 3 of 4 gross errors (4 of 4 at 0.5, flagging 12.5 %)" in text
    assert "challenge images" not in text  # no calibration stored, none quoted
    assert "3 of the 4 are clean ellipses" in text and "1 of the 4 are on the largest fifth" in text
    assert "a 1.5x larger pass catches more than the score alone (2 of 4," in text


def test_the_review_text_quotes_the_shipped_models_as_each_others_second_opinion(tmp_path):
    _stored_review(tmp_path, best_other=2)
    assert "The other shipped model" not in review_text(tmp_path)  # nothing stored, nothing said

    def flag(caught: int, flagged: float) -> dict:
        return {"gross_caught": caught, "n_gross": 5, "fraction_set_aside": flagged}

    write_results({"limit_mm": 6.0, "hc_error_correlation": 0.812, "flag alone": flag(1, 0.05),
                   "flag or second opinion": flag(3, 0.075)}, tmp_path / "review" / "second_opinion_small_test.json")
    text = " ".join(review_text(tmp_path).split())
    assert ("differ by more than 6 mm catches for `small` 3 of 5 with 7.5 % flagged (the flag alone: 1 of 5 with "
            "5.0 % flagged); their HC errors correlate 0.81 (results/review/second_opinion_small_test.json)") in text


def test_the_review_text_quotes_each_calibrated_threshold_and_what_it_flags_held_out(tmp_path):
    _stored_review(tmp_path, best_other=2)
    small, default = SHIPPED_MODELS[0], SHIPPED_MODELS[1]
    for m, t in ((small, 0.7), (default, 0.8)):
        write_results({"review_below": t, "max_flagged": 0.1, "n_images": 335},
                      tmp_path / "review" / f"calibration_{m}.json")

    def rec(model, part, below, flagged, tta=False):
        return {"model": model, "part": part, "tta": tta,
                "review_flag": {"review_below": below, "fraction_set_aside": flagged, "n_gross": 3}}

    records = [rec(default, "test", 0.8, 0.15), rec(default, "val", 0.8, 0.089), rec(default, "val", 0.8, 0.2, tta=True),
               rec(small, "val", 0.28, 0.03), rec(small, "test", 0.7, 0.12)]
    text = " ".join(review_text(tmp_path, records).split())
    assert "flags at most 10 % of its own predictions on HC18's 335 unlabelled challenge images" in text
    assert f"0.7 for `{small}`, 0.8 for `{default}`" in text
    # records at another threshold (a refit's recipe run) and with flips are left out; val before test
    assert (f"the same thresholds flag: `{small}` 12.0 % of the test part (3 gross errors there); `{default}` 8.9 % "
            "of the validation part (3 gross errors there) and 15.0 % of the test part") in text


def test_the_review_paragraphs_say_so_when_a_second_opinion_helps(tmp_path):
    _stored_review(tmp_path, best_other=4)
    text = " ".join(review_text(tmp_path).split())
    assert "the best catches 4 of 4 against 2 for the score alone" in text
    assert "neither" not in text


def test_a_card_refuses_a_threshold_that_is_not_the_stored_one(tmp_path):
    path = tmp_path / CALIBRATION_FILE.format(model="small")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"review_below": 0.79, "max_flagged": 0.1, "n_images": 335}))
    assert calibration("small", 0.79, folder=tmp_path)["review_below"] == 0.79
    with pytest.raises(FetalheadError, match="re-export"):
        calibration("small", 0.28, folder=tmp_path)
    assert calibration("default", 0.28, folder=tmp_path) is None  # none stored: nothing to hold it to


def test_a_wrapped_paragraph_keeps_a_number_and_its_percent_sign_together():
    # a plain fill at 95 characters ends the first line with "10" and starts the second with "%"
    text = wrap("x" * 89 + " 10 % of them, and more words after it to fill another line")
    assert text.splitlines()[1].startswith("  10 % of them")
    assert "10 % of them" in " ".join(text.split()) and "\0" not in text
