"""One scan stored at other resolutions: does it measure the same head circumference?

Scanners export one picture at many sizes (HC18's 540x800, 1080x1600, smaller thumbnails).
Each labelled image of a part of the split is resized by each factor of `FACTORS` (OpenCV,
bilinear up, area down), its pixel size divided by the factor, and measured by one model: the
same head in the same millimetres, so its HC should not move. The network sees every frame at
its own size; the correction for the annotation line follows the network's pixels
(`fetalhead.ellipse.prediction_bias_px`); the record also keeps what the fixed correction of
0.93 frame pixels (`ANNOTATION_BIAS_PX` whatever the frame) would have given.

    HC18_DIR=/path/to/hc18 python benchmarks/frame_resolution.py --model default --part test \\
        --results results/robustness/frame_resolution_default_test.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fetalhead.ellipse import ANNOTATION_BIAS_PX
from fetalhead.errors import run_script
from fetalhead.evaluate import GROSS_ERROR_MM, bootstrap_ci
from fetalhead.predict import Predictor
from fetalhead.results import provenance, write_results

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script frame_shapes.py
from frame_shapes import load_part, part_parser  # noqa: E402

#: the resizing factors (1: the image as stored)
FACTORS: tuple[float, ...] = (0.5, 1.0, 2.0)
#: the figures kept per factor (means with exam-bootstrap intervals)
FIGURES = ("hc_error_mm", "hc_abs_error_mm", "hc_change_mm", "hc_change_fixed_mm")


def resized(image: np.ndarray, factor: float) -> np.ndarray:
    """uint8 (H, W) image resized by `factor` (each side rounded), bilinear up, area down."""
    h, w = image.shape
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if factor == 1:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR if factor > 1 else cv2.INTER_AREA)


def score_factor(predictor: Predictor, items: Sequence[tuple], factor: float,
                 batch_size: int = 8) -> pd.DataFrame:
    """One row per item (name, exam, pixel size mm, CSV HC mm, image, annotation) measured at
    `factor` times its size and 1 / `factor` its pixel size: HC (mm) and its difference from
    the CSV's, the pixel size and the correction used, and the HC the fixed correction of
    `ANNOTATION_BIAS_PX` frame pixels would give."""
    rows = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        sizes = [it[2] / factor for it in chunk]
        preds = predictor.predict_batch([resized(it[4], factor) for it in chunk], sizes, batch_size=batch_size)
        for (name, exam, _, hc, _, _), px, pred in zip(chunk, sizes, preds, strict=True):
            fixed = pred.hc_raw_mm - ANNOTATION_BIAS_PX * px
            rows.append({"filename": name, "exam": exam, "pixel_size_mm": px, "hc_mm": pred.hc_mm,
                         "hc_fixed_mm": fixed, "bias_mm": pred.bias_mm, "hc_error_mm": pred.hc_mm - hc,
                         "hc_abs_error_mm": abs(pred.hc_mm - hc)})
    return pd.DataFrame(rows)


def factor_summary(df: pd.DataFrame, base: pd.DataFrame) -> dict:
    """`FIGURES` (mean, 95 % exam-bootstrap interval, n) of one factor's rows against the
    rows of the image as stored (`base`, same order): HC change = HC here - HC as stored."""
    df = df.assign(hc_change_mm=df["hc_mm"].to_numpy() - base["hc_mm"].to_numpy(),
                   hc_change_fixed_mm=df["hc_fixed_mm"].to_numpy() - base["hc_fixed_mm"].to_numpy())
    out = {}
    for m in FIGURES:
        values = df[m].astype(float)
        low, high = bootstrap_ci(values, groups=df["exam"].to_numpy())
        out[m] = {"mean": float(values.mean()), "ci": [float(low), float(high)], "n": int(values.notna().sum())}
    out["hc_change_abs_max_mm"] = float(np.nanmax(np.abs(df["hc_change_mm"])))
    out["n_gross"] = int((df["hc_abs_error_mm"] > GROSS_ERROR_MM).sum())
    return out


def main(argv: list[str] | None = None) -> int:
    return run_script(part_parser(Path(__file__).name, __doc__.split("\n\n")[0]), _run, argv)


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    predictor, items = load_part(args)
    tables = {f: score_factor(predictor, items, f) for f in tqdm(FACTORS, desc="factors", unit="factor")}
    base = tables[1.0]
    factors = {f"{f:g}": factor_summary(t, base) for f, t in tables.items()}
    record = {
        "what": "each image resized by each factor, its pixel size divided by it, measured by one model: "
                "HC against the CSV and its change from the image as stored, with the correction that follows "
                "the network's pixels (hc_change_mm) and with a fixed 0.93 frame pixels (hc_change_fixed_mm)",
        "model": predictor.weights, "part": args.part, "n_images": len(items),
        "gross_error_mm": GROSS_ERROR_MM, "factors": factors,
        "command": "python benchmarks/frame_resolution.py " + " ".join(sys.argv[1:] if argv is None else argv),
        **provenance(),
    }
    write_results(record, args.results)
    for name, c in factors.items():
        print(f"x{name:>3}: HC {c['hc_abs_error_mm']['mean']:.2f} mm from the CSV's, moved {c['hc_change_mm']['mean']:+.3f} mm "
              f"(fixed correction: {c['hc_change_fixed_mm']['mean']:+.3f} mm), {c['n_gross']} gross")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    raise SystemExit(main())
