"""Does the frame the review flag trusts most measure the head better? HC18's examinations of
several frames.

`fetalhead predict --frame best` keeps, of the frames of a cine loop or video, the measurement
the review flag trusts most (`fetalhead.predict.best_measurement`: status "ok" first, then the
highest quality score, the first of equals). HC18 holds several annotated frames of some
examinations (`010_HC.png`, `010_2HC.png`): for each examination of more than one frame in a
per-image table of `fetalhead evaluate`, this script sets the |HC error| of the frame chosen that
way against the mean over its frames (what a frame taken at random gives), the best and the worst
frame (what knowing the errors would give), with an exam-bootstrap interval of the mean
difference chosen - random (negative: the choice helps).

    fetalhead evaluate --model small --part test --out runs/final_small_test
    python benchmarks/best_frame.py --check small_test=runs/final_small_test/metrics_per_image.csv \\
        --results results/review/best_frame.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fetalhead.data import read_image_table
from fetalhead.errors import FetalheadError, OneLineParser, run_script
from fetalhead.evaluate import bootstrap_ci
from fetalhead.predict import best_measurement
from fetalhead.results import check_new_results, measured_weights, provenance, write_results

#: the columns of `fetalhead evaluate`'s metrics_per_image.csv this script reads
COLUMNS = ("filename", "exam", "status", "quality", "hc_abs_error_mm")


def read_rows(path: Path) -> pd.DataFrame:
    """A per-image table of `fetalhead evaluate` (one row per image); one-line errors."""
    return read_image_table(path, COLUMNS, "metrics_per_image.csv of fetalhead evaluate")


def per_exam(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per examination of more than one frame: exam, frames, and the |HC error| (mm) of
    the frame `best_measurement` chooses (`chosen`), the mean over its frames (`random`), the
    lowest (`best`) and the highest (`worst`); a frame without a head counts as no error known
    (left out of the mean, best and worst) and an examination of no measured frame is left out."""
    out = []
    for exam, frames in rows.groupby("exam", sort=True):
        if len(frames) < 2:
            continue
        chosen = best_measurement(frames.to_dict("records"))
        err = frames["hc_abs_error_mm"].to_numpy(float)
        if chosen is None or not np.isfinite(err).any():
            continue
        out.append({"exam": exam, "frames": len(frames), "chosen": float(chosen["hc_abs_error_mm"]),
                    "random": float(np.nanmean(err)), "best": float(np.nanmin(err)), "worst": float(np.nanmax(err))})
    return pd.DataFrame(out, columns=["exam", "frames", "chosen", "random", "best", "worst"])


def summary(exams: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict[str, float | int | list]:
    """Means (mm) of `per_exam`'s columns, the mean difference chosen - random with its 95 %
    bootstrap interval over examinations, and in how many the chosen frame beat the mean."""
    if exams.empty:
        raise FetalheadError("no examination of more than one measured frame in the table")
    diff = (exams["chosen"] - exams["random"]).to_numpy(float)
    lo, hi = bootstrap_ci(diff, n=n_boot, seed=seed)
    return {"n_exams": int(len(exams)), "n_frames": int(exams["frames"].sum()),
            **{f"hc_abs_error_mm_{k}": float(exams[k].mean()) for k in ("chosen", "random", "best", "worst")},
            "chosen_minus_random_mm": float(diff.mean()), "chosen_minus_random_ci": [lo, hi],
            "n_chosen_better": int((diff < -1e-9).sum()), "n_chosen_worse": int((diff > 1e-9).sum())}


def _check(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=metrics_per_image.csv")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    p.add_argument("--check", type=_check, action="append", required=True, metavar="NAME=FILE",
                   help="a name and the metrics_per_image.csv of fetalhead evaluate (repeatable)")
    p.add_argument("--results", type=Path, required=True, help="the summary JSON")
    return run_script(p, _run, argv)


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    check_new_results(args.results)
    names = [name for name, _ in args.check]
    if len(set(names)) != len(names):
        raise FetalheadError(f"--check names repeat: {', '.join(names)}")
    weights = {name: measured_weights(path) for name, path in args.check}
    checks = {name: summary(per_exam(read_rows(path))) for name, path in args.check}
    record = {"what": "the |HC error| of the frame predict --frame best keeps, against a frame taken at random, "
                      "over HC18 examinations of several frames",
              "tables": {name: str(path) for name, path in args.check}, "weights": weights, **checks,
              "command": "python benchmarks/best_frame.py " + " ".join(sys.argv[1:] if argv is None else argv),
              **provenance()}
    write_results(record, args.results)
    for name, s in checks.items():
        lo, hi = s["chosen_minus_random_ci"]
        print(f"{name}: {s['n_exams']} examinations of {s['n_frames']} frames: chosen frame "
              f"{s['hc_abs_error_mm_chosen']:.2f} mm, a frame at random {s['hc_abs_error_mm_random']:.2f} mm "
              f"(difference {s['chosen_minus_random_mm']:+.2f} [{lo:+.2f}, {hi:+.2f}]; better in {s['n_chosen_better']}, "
              f"worse in {s['n_chosen_worse']}), best {s['hc_abs_error_mm_best']:.2f}, worst {s['hc_abs_error_mm_worst']:.2f}")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    raise SystemExit(main())
