"""How wide must an HC's interval be to hold the truth 9 times in 10? Calibrated out of fold.

`fetalhead.interval` gives each measured HC the interval HC +- FACTOR x (pixel size + OFFSET_MM)
mm. This script derives both constants from the out-of-fold predictions of the train part
(`benchmarks/out_of_fold.py`: each image measured by a model of the `small` recipe that never
saw its examination) and measures how often the interval holds the reference HC:

1. for each candidate offset (and a constant width), the coverage on each fold of intervals
   calibrated on the other folds, overall and per third of pixel size (fine, middle, coarse):
   the offset chosen is the one whose worst third strays least from the aimed coverage;
2. FACTOR, split-conformal on all out-of-fold rows with that offset;
3. with `--check NAME=FILE` (the per-image table of `fetalhead evaluate` on a held-out part),
   the coverage of the library's interval there, with its exam-bootstrap interval.

    fetalhead evaluate --model small --part test --out runs/final_small_test
    fetalhead evaluate --model default --part test --out runs/final_default_test
    python benchmarks/hc_interval.py --rows results/review/out_of_fold_small.csv \\
        --check small_test=runs/final_small_test/metrics_per_image.csv \\
        --check default_test=runs/final_default_test/metrics_per_image.csv --results results/review/hc_interval_small.json
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fetalhead.data import read_image_table
from fetalhead.errors import FetalheadError, OneLineParser, run_script
from fetalhead.interval import COVERAGE, FACTOR, OFFSET_MM, conformal_factor, interval_summary
from fetalhead.results import check_new_results, measured_weights, provenance, write_results

#: the columns of the out-of-fold table this script reads
COLUMNS = ("filename", "exam", "pixel_size_mm", "hc_abs_error_mm", "fold")
#: the columns of a per-image table of `fetalhead evaluate` it reads
CHECK_COLUMNS = ("filename", "exam", "pixel_size_mm", "hc_abs_error_mm", "status")
#: offsets tried (mm per pixel); inf: a constant width, whatever the pixel size
OFFSETS_MM = (0.0, 0.025, 0.05, 0.075, 0.1, 0.2, math.inf)


def _scaled(pixel_size_mm: np.ndarray, offset_mm: float) -> tuple[np.ndarray, float]:
    """(pixel sizes, offset) such that FACTOR x (p + offset) is the interval's half-width: a
    constant width (offset inf) is FACTOR x (0 + 1)."""
    return (np.zeros_like(pixel_size_mm), 1.0) if math.isinf(offset_mm) else (pixel_size_mm, offset_mm)


def cross_fold(rows: pd.DataFrame, offset_mm: float, coverage: float = COVERAGE) -> dict:
    """Coverage of intervals calibrated on the other folds, on each fold of `rows` (columns
    pixel_size_mm, hc_abs_error_mm, fold): overall, per third of pixel size, and the median
    half-width (mm)."""
    p, e = rows["pixel_size_mm"].to_numpy(float), rows["hc_abs_error_mm"].to_numpy(float)
    fold = rows["fold"].to_numpy()
    held = np.zeros(len(rows), bool)
    width = np.zeros(len(rows))
    q, off = _scaled(p, offset_mm)
    for f in np.unique(fold):
        mine = fold == f
        factor = conformal_factor(e[~mine], q[~mine], coverage, off)
        width[mine] = factor * (q[mine] + off)
        held[mine] = np.isfinite(e[mine]) & (e[mine] <= width[mine])
    thirds = np.array_split(np.argsort(p, kind="stable"), 3)
    by_third = [float(held[t].mean()) for t in thirds]
    return {"coverage": float(held.mean()), "coverage_by_third": by_third,
            "worst_third_gap": float(max(abs(c - coverage) for c in by_third)),
            "median_half_width_mm": float(np.median(width))}


def choose_offset(table: dict[str, dict]) -> float:
    """The finite candidate of `cross_fold` results {offset: result} whose worst third strays
    least from the aimed coverage (the first such when tied)."""
    finite = {float(k): v for k, v in table.items() if math.isfinite(float(k))}
    return min(finite, key=lambda k: finite[k]["worst_third_gap"])


def _parse_check(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise FetalheadError(f"--check {text!r}: give NAME=FILE (the per-image table of fetalhead evaluate)")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=Path, required=True,
                   help="the out-of-fold per-image table of benchmarks/out_of_fold.py")
    p.add_argument("--check", action="append", default=[], metavar="NAME=FILE",
                   help="a per-image table of fetalhead evaluate on a held-out part (repeatable)")
    p.add_argument("--results", type=Path, required=True, help="the summary JSON")
    return run_script(p, _run, argv)


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    check_new_results(args.results)
    checks = dict(_parse_check(c) for c in args.check)
    rows = read_image_table(args.rows, COLUMNS, "out-of-fold table of benchmarks/out_of_fold.py")
    if rows.empty:
        raise FetalheadError(f"{args.rows}: no images listed")
    tables = {name: read_image_table(path, CHECK_COLUMNS, "metrics_per_image.csv of fetalhead evaluate")
              for name, path in checks.items()}
    weights = {name: measured_weights(path) for name, path in checks.items()}
    candidates = {str(o): cross_fold(rows, o) for o in OFFSETS_MM}
    offset = choose_offset(candidates)
    factor = conformal_factor(rows["hc_abs_error_mm"], rows["pixel_size_mm"], COVERAGE, offset)
    if (offset, round(factor, 3)) != (OFFSET_MM, FACTOR):
        print(f"note: fetalhead.interval holds OFFSET_MM {OFFSET_MM:g}, FACTOR {FACTOR:g}; these rows give "
              f"{offset:g}, {factor:.3f}: the checks below use the library's", file=sys.stderr)
    record = {
        "what": f"the {100 * COVERAGE:g} % interval of a measured HC, HC +- factor x (pixel size + offset) mm: "
                "offset and factor from out-of-fold predictions, and how often it holds the reference HC",
        "rows": str(args.rows), "n_rows": int(len(rows)), "coverage_aimed": COVERAGE,
        "offsets_mm": candidates, "offset_mm": offset, "factor": factor,
        "checks": {name: {"table": str(checks[name]), "weights": weights[name], **interval_summary(t)}
                   for name, t in tables.items()},
        "command": "python benchmarks/hc_interval.py " + " ".join(sys.argv[1:] if argv is None else argv),
        **provenance(),
    }
    write_results(record, args.results)
    said = "; ".join(f"{name} {c['n_inside']} of {c['n']}" for name, c in record["checks"].items())
    print(f"offset {offset:g} mm, factor {factor:.3f}: inside the interval {said or 'no checks'}; wrote {args.results}")


if __name__ == "__main__":
    raise SystemExit(main())
