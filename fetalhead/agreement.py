"""How measured HCs agree with the HCs sonographers recorded: no masks needed.

A clinic seldom has masks of its scans, but its reports hold the HC each sonographer measured.
`agreement_table` pairs the predictions.csv of `fetalhead predict` with a CSV of those HCs (by
file name, then stem); `agreement_summary` gives the mean absolute and the mean difference with
bootstrap intervals (whole examinations resampled when they are known: an `exam` column of the
recorded CSV, else HC18-style names, else each image its own), the Bland-Altman limits of
agreement, how often the recorded HC lies inside the measured one's 90 % interval
(`fetalhead.interval`), and how the review flag separates the gross differences
(`fetalhead.evaluate.flag_summary`). `fetalhead compare` runs it and draws the Bland-Altman plot.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fetalhead.data import read_csv, read_image_table
from fetalhead.errors import FetalheadError
from fetalhead.evaluate import bootstrap_ci, flag_summary
from fetalhead.files import check_input_file
from fetalhead.folder import exam_of, lookup_by_name
from fetalhead.inputs import validate_pixel_size
from fetalhead.interval import interval_summary
from fetalhead.predict import STATUS_NO_HEAD, STATUS_OK, STATUS_REVIEW
from fetalhead.report import limits_of_agreement

__all__ = ["EXAM_COLUMN", "PREDICTION_COLUMNS", "agreement_summary", "agreement_table", "read_exams",
           "read_predictions"]

#: the columns of `fetalhead predict`'s predictions.csv that are compared
PREDICTION_COLUMNS = ("filename", "status", "quality", "pixel_size_mm", "hc_mm")
#: the optional column of the recorded-HC CSV that names each image's examination
EXAM_COLUMN = "exam"


def read_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """The predictions.csv of `fetalhead predict` (a row per image: `PREDICTION_COLUMNS`);
    one-line FetalheadError for a missing file or column, a status, pixel size, quality or HC
    that is not one (naming its line), and for several frames of one cine loop or video (one
    recorded HC cannot tell which of them it is)."""
    path = Path(path)
    check_input_file(path, "predictions.csv")
    table = read_image_table(path, PREDICTION_COLUMNS, "the predictions.csv of fetalhead predict",
                             frames_hint="; compare one measurement per image (predict --frame best "
                                         "keeps the best frame of each, --frame N frame N)")
    if table.empty:
        raise FetalheadError(f"{path}: no images listed")
    for line, row in enumerate(table.itertuples(index=False), start=2):
        where = f"{path} line {line} ({row.filename})"
        if row.status not in (STATUS_OK, STATUS_REVIEW, STATUS_NO_HEAD):
            raise FetalheadError(f"{where}: status {row.status!r} is not {STATUS_OK}, {STATUS_REVIEW} or {STATUS_NO_HEAD}")
        try:
            validate_pixel_size(row.pixel_size_mm)
        except FetalheadError as e:
            raise FetalheadError(f"{where}: {e}") from None
        if row.status != STATUS_NO_HEAD:
            for column in ("quality", "hc_mm"):
                raw = getattr(row, column)
                if pd.isna(raw):
                    raise FetalheadError(f"{where}: no {column}, though its status is {row.status}")
                if not np.isfinite(pd.to_numeric(raw, errors="coerce")):
                    raise FetalheadError(f"{where}: {column} {raw!r} is not a finite number")
    return table


def read_exams(path: str | os.PathLike) -> dict[str, str]:
    """{file name: examination} from the recorded-HC CSV's `exam` column (empty cells left
    out); {} when it has no such column."""
    table = read_csv(Path(path), dtype=str, keep_default_na=False)
    if EXAM_COLUMN not in table or table.empty:
        return {}
    name_col = "filename" if "filename" in table else table.columns[0]
    return {str(n).strip(): str(e).strip() for n, e in zip(table[name_col], table[EXAM_COLUMN], strict=True)
            if str(e).strip()}


def agreement_table(predictions: pd.DataFrame, recorded: dict[str, float | None],
                    exams: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per image of `predictions` (a predictions.csv) with an HC in `recorded` ({file
    name or stem: HC mm, or None}): filename, exam, status, quality, pixel_size_mm, hc_pred_mm,
    hc_true_mm (the recorded), hc_error_mm (measured - recorded, NaN where no head was found)
    and hc_abs_error_mm. Exams: `exams` ({file name or stem: examination}) where it names the
    image, else "HC18 exam N" from an HC18-style name (`fetalhead.folder.exam_of`), else
    "image K" (its row of `predictions`, from 1): an examination of its own."""
    rows = []
    for i, row in enumerate(predictions.itertuples(index=False)):
        true = lookup_by_name(recorded, row.filename)
        if true is None:
            continue
        exam = lookup_by_name(exams or {}, row.filename)
        if exam is None:
            number = exam_of(row.filename, i)[0]
            exam = f"HC18 exam {number}" if number >= 0 else f"image {i + 1}"
        pred = float(row.hc_mm) if row.status != STATUS_NO_HEAD else math.nan
        rows.append({"filename": row.filename, "exam": exam,
                     "status": row.status, "quality": float(row.quality), "pixel_size_mm": float(row.pixel_size_mm),
                     "hc_pred_mm": pred, "hc_true_mm": float(true), "hc_error_mm": pred - float(true),
                     "hc_abs_error_mm": abs(pred - float(true))})
    columns = ["filename", "exam", "status", "quality", "pixel_size_mm", "hc_pred_mm", "hc_true_mm",
               "hc_error_mm", "hc_abs_error_mm"]
    return pd.DataFrame(rows, columns=columns)


def _mean_ci(values: pd.Series, groups: pd.Series, n_boot: int, seed: int) -> dict[str, Any]:
    v = values.to_numpy(float)
    finite = v[np.isfinite(v)]
    lo, hi = bootstrap_ci(v, n=n_boot, seed=seed, groups=groups.to_numpy())
    return {"mean": float(finite.mean()) if finite.size else math.nan, "ci": (lo, hi),
            "median": float(np.median(finite)) if finite.size else math.nan}


def agreement_summary(table: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """For a table of `agreement_table`: images compared, with no head found, examinations; HC
    mean absolute and mean difference (mm; mean, 95 % bootstrap interval over examinations,
    median), the Bland-Altman bias and 95 % limits of agreement (mm), the share of recorded
    HCs inside the measured one's interval, and the review flag against gross differences."""
    if table.empty:
        raise FetalheadError("no image has both a measurement and a recorded HC")
    measured = table["status"] != STATUS_NO_HEAD
    bias, lo, hi = limits_of_agreement(table["hc_pred_mm"], table["hc_true_mm"])
    return {
        "n_images": int(len(table)),
        "n_no_head": int((~measured).sum()),
        "n_exams": int(table["exam"].nunique()),
        "hc_abs_diff_mm": _mean_ci(table["hc_abs_error_mm"], table["exam"], n_boot, seed),
        "hc_diff_mm": _mean_ci(table["hc_error_mm"], table["exam"], n_boot, seed),
        "limits_of_agreement_mm": {"bias": bias, "low": lo, "high": hi},
        "interval": interval_summary(table, n_boot=n_boot, seed=seed),
        "review_flag": flag_summary(table, n_boot=n_boot, seed=seed),
    }
