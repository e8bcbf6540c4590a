"""A model's review threshold from its own scores on unlabelled images: no label is read.

A threshold chosen on one model's scores does not carry to another: a stronger network is
surer of itself, its scores are higher, and the same threshold flags fewer of its images. This
script takes the predictions.csv that `fetalhead predict` writes for a folder of unlabelled
images of the same kind (HC18's 335-image challenge test set, whose labels are hidden) and gives
the largest threshold that flags at most `--max-flagged` of them
(`fetalhead.quality.review_threshold`), with the share the model's own threshold flags there.
The result is what `fetalhead export --review-below` writes into a model's file.

    fetalhead predict --model small --out runs/challenge_small \\
        --pixel-csv ../shared/hc18/test_set_pixel_size.csv ../shared/hc18/test_set
    python benchmarks/review_calibration.py --predictions runs/challenge_small/predictions.csv \\
        --results results/review/calibration_small.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fetalhead.data import read_image_table
from fetalhead.errors import FetalheadError, OneLineParser, run_script
from fetalhead.predict import STATUS_OK, STATUS_REVIEW
from fetalhead.quality import MAX_FLAGGED, review_threshold
from fetalhead.results import check_new_results, provenance, write_results

#: the columns of `fetalhead predict`'s predictions.csv this script reads
COLUMNS = ("filename", "status", "quality", "model")
#: the score quantiles the record keeps, to show where the threshold falls
QUANTILES = (0.02, 0.05, 0.10, 0.20, 0.50)


def read_predictions(path: Path) -> pd.DataFrame:
    """The predictions.csv of `fetalhead predict` (one row per image); one-line errors."""
    table = read_image_table(path, COLUMNS, "predictions.csv of fetalhead predict")
    if table.empty:
        raise FetalheadError(f"{path}: no images listed")
    return table


def measured_by(table: pd.DataFrame, path: Path) -> str:
    """The one model that measured every row of `table` (its "model" column: the training run
    of the weights); FetalheadError (one line) when the rows name none or several."""
    models = table["model"].dropna().astype(str).unique()
    if len(models) != 1 or table["model"].isna().any():
        raise FetalheadError(f"{path}: its rows name {len(models)} models; calibrate one model's predictions")
    return str(models[0])


def calibration(table: pd.DataFrame, max_flagged: float = MAX_FLAGGED) -> dict[str, float | int | dict]:
    """The threshold for `table` (predictions.csv rows; a NaN quality, no head found, counts as
    0) and what it and the table's own statuses set aside."""
    scores = np.nan_to_num(table["quality"].to_numpy(float), nan=0.0)
    threshold = review_threshold(scores, max_flagged)
    return {
        "n_images": int(len(scores)), "max_flagged": float(max_flagged), "review_below": threshold,
        "fraction_flagged": float(np.mean(scores < threshold)),
        "fraction_flagged_as_predicted": float(np.mean(table["status"].to_numpy() != STATUS_OK)),
        "n_review_as_predicted": int(np.sum(table["status"].to_numpy() == STATUS_REVIEW)),
        "score_quantiles": {f"{q:g}": float(np.quantile(scores, q)) for q in QUANTILES},
    }


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    p.add_argument("--predictions", type=Path, required=True, help="predictions.csv of fetalhead predict")
    p.add_argument("--max-flagged", type=float, default=MAX_FLAGGED,
                   help=f"the largest share of images to flag (default {MAX_FLAGGED:g})")
    p.add_argument("--results", type=Path, required=True, help="the summary JSON")
    return run_script(p, _run, argv)


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    if not 0.0 < args.max_flagged < 1.0:
        raise FetalheadError(f"--max-flagged {args.max_flagged}: must be a share between 0 and 1")
    check_new_results(args.results)
    table = read_predictions(args.predictions)
    record = {
        "what": "the largest review threshold that flags at most max_flagged of a model's predictions "
                "on unlabelled images (no label read)",
        "predictions": str(args.predictions), "weights": measured_by(table, args.predictions),
        **calibration(table, args.max_flagged),
        "command": "python benchmarks/review_calibration.py " + " ".join(sys.argv[1:] if argv is None else argv),
        **provenance(),
    }
    write_results(record, args.results)
    print(f"review below {record['review_below']:g}: {100 * record['fraction_flagged']:.1f} % of "
          f"{record['n_images']} images flagged (as predicted: {100 * record['fraction_flagged_as_predicted']:.1f} %); "
          f"wrote {args.results}")


if __name__ == "__main__":
    raise SystemExit(main())
