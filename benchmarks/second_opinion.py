"""Would a second network reveal a gross error? Two models' per-image tables compared.

The review flag misses measurements that are clean ellipses a few per cent off. Two networks
that err on different images could catch them: where their head circumferences differ by more
than a gross error, at least one of them is likely grossly wrong. This script takes the
per-image tables of `fetalhead evaluate` for the model measured (`--rows`) and for a second
one (`--other`) on the same images, and flags a measurement when its quality score already
does (status `review` or `no head found`) OR the two HCs differ by more than `--limit-mm`
(default: the gross-error size, 6 mm; no head found by the second model counts as a
disagreement). It reports, for the flag alone and for the flag with the second opinion: share
flagged, gross errors (|HC error| > 6 mm) caught, and the HC of the unflagged
(`fetalhead.evaluate.flag_summary`), and how the two models' HC errors correlate.

    fetalhead evaluate --model small --part test --out runs/final_small_test
    fetalhead evaluate --model default --part test --out runs/final_default_test
    python benchmarks/second_opinion.py --rows runs/final_small_test/metrics_per_image.csv \\
        --other runs/final_default_test/metrics_per_image.csv --results results/review/second_opinion_small_test.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fetalhead.data import read_image_table
from fetalhead.errors import FetalheadError, OneLineParser, run_script
from fetalhead.evaluate import GROSS_ERROR_MM, flag_summary
from fetalhead.predict import STATUS_OK, STATUS_REVIEW
from fetalhead.results import check_new_results, measured_weights, provenance, write_results

#: the columns of `fetalhead evaluate`'s metrics_per_image.csv this script reads
COLUMNS = ("filename", "exam", "hc_pred_mm", "hc_abs_error_mm", "hc_error_mm", "status")


def read_rows(path: Path) -> pd.DataFrame:
    """A per-image table of `fetalhead evaluate` (one row per image); one-line errors."""
    return read_image_table(path, COLUMNS, "metrics_per_image.csv of fetalhead evaluate")


def with_second_opinion(rows: pd.DataFrame, other: pd.DataFrame, limit_mm: float = GROSS_ERROR_MM) -> pd.DataFrame:
    """`rows` with `disagreement_mm` (|HC - the other model's HC|, mm; inf where either found no
    head) and its status set to `review` where it was `ok` and the disagreement exceeds
    `limit_mm`. Both tables must list the same images."""
    if set(rows["filename"]) != set(other["filename"]):
        only = sorted(set(rows["filename"]) ^ set(other["filename"]))
        raise FetalheadError(f"the two tables list different images (e.g. {only[0]}); evaluate both on the same part")
    hc_other = other.set_index("filename")["hc_pred_mm"].reindex(rows["filename"]).to_numpy(float)
    out = rows.copy()
    gap = np.abs(out["hc_pred_mm"].to_numpy(float) - hc_other)
    out["disagreement_mm"] = np.where(np.isfinite(gap), gap, np.inf)
    out.loc[(out["status"] == STATUS_OK) & (out["disagreement_mm"] > limit_mm), "status"] = STATUS_REVIEW
    return out


def error_correlation(rows: pd.DataFrame, other: pd.DataFrame) -> float:
    """Pearson correlation of the two models' signed HC errors (mm) over images both measured."""
    both = rows.merge(other, on="filename", suffixes=("", "_other"))[["hc_error_mm", "hc_error_mm_other"]].dropna()
    return float(both.corr().iloc[0, 1]) if len(both) > 2 else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=Path, required=True, help="metrics_per_image.csv of the model measured")
    p.add_argument("--other", type=Path, required=True, help="metrics_per_image.csv of the second model, same images")
    p.add_argument("--limit-mm", type=float, default=GROSS_ERROR_MM, help="HC difference (mm) that flags (default 6)")
    p.add_argument("--results", type=Path, required=True, help="the summary JSON")
    return run_script(p, _run, argv)


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    if not (np.isfinite(args.limit_mm) and args.limit_mm > 0):
        raise FetalheadError(f"--limit-mm {args.limit_mm}: must be a positive number of mm")
    check_new_results(args.results)
    weights = {"rows": measured_weights(args.rows), "other": measured_weights(args.other)}
    rows, other = read_rows(args.rows), read_rows(args.other)
    joined = with_second_opinion(rows, other, args.limit_mm)

    record = {
        "what": "a second network's HC as a review signal: flag where the two differ by more than limit_mm",
        "rows": str(args.rows), "other": str(args.other), "weights": weights, "limit_mm": args.limit_mm,
        "hc_error_correlation": error_correlation(rows, other),
        "flag alone": flag_summary(rows), "flag or second opinion": flag_summary(joined),
        "command": "python benchmarks/second_opinion.py " + " ".join(sys.argv[1:] if argv is None else argv),
        **provenance(),
    }
    write_results(record, args.results)
    for name in ("flag alone", "flag or second opinion"):
        s = record[name]
        print(f"{name}: {100 * s['fraction_set_aside']:.1f} % flagged, {s['gross_caught']} of {s['n_gross']} gross "
              f"errors caught, unflagged HC {s['hc_abs_error_mm_kept']:.2f} mm")
    print(f"HC errors correlate {record['hc_error_correlation']:.2f}; wrote {args.results}")


if __name__ == "__main__":
    raise SystemExit(main())
