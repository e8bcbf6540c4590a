"""How far the HC of a filled HC18 annotation is from the CSV, and what the correction leaves.

The filled annotation masks include the sonographer's drawn line, so an ellipse fitted to their
boundary measures a slightly larger head than the CSV gives. `fetalhead.ellipse` removes this
with one constant, `ANNOTATION_BIAS_PX` pixels of circumference (`annotation_bias_mm`). This
script measures, from every labelled image at original resolution:

- the offset per part of the committed split and over all images: HC from the mask minus the
  CSV's HC (mm): mean, largest absolute, and how many masks measure smaller;
- the bias estimated on the train part only (`estimate_bias`): in pixels of circumference
  (the shipped `ANNOTATION_BIAS_PX`) and as one constant in mm (`ANNOTATION_BIAS_MM`);
- per part, the mean absolute difference from the CSV left by no correction, by the shipped
  constant in mm and by the shipped per-pixel correction.

    HC18_DIR=/path/to/hc18 python benchmarks/annotation_offset.py \\
        --results results/annotation/offset.json
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from fetalhead.ellipse import (
    ANNOTATION_BIAS_MM,
    ANNOTATION_BIAS_PX,
    annotation_bias_mm,
    estimate_bias,
    reference_mask_hcs,
)
from fetalhead.errors import FetalheadError, OneLineParser, run_script
from fetalhead.paths import data_dir
from fetalhead.results import check_new_results, provenance, write_results
from fetalhead.split import LABELLED_PARTS


def mask_hcs(root: Path, threads: int = 2) -> pd.DataFrame:
    """DataFrame[part, filename, pixel_size_mm, hc_mm (CSV), hc_mask_mm (no correction)] of
    every labelled image in `root`, one part per thread."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        parts = list(pool.map(lambda p: reference_mask_hcs(p, root=root).assign(part=p), LABELLED_PARTS))
    return pd.concat(parts, ignore_index=True)


def offsets(d: pd.DataFrame) -> dict[str, Any]:
    """Summary of one set of rows of `mask_hcs` (mm): the offset mask - CSV and the mean
    absolute difference left by each correction."""
    diff = d["hc_mask_mm"] - d["hc_mm"]
    if diff.isna().any():
        raise FetalheadError(f"{int(diff.isna().sum())} annotation(s) without a head: is this HC18?")
    return {
        "n_images": len(d),
        "mean_mm": float(diff.mean()),
        "max_abs_mm": float(diff.abs().max()),
        "n_mask_smaller": int((diff < 0).sum()),
        "mae_left_mm": {
            "uncorrected": float(diff.abs().mean()),
            "additive": float((diff - ANNOTATION_BIAS_MM).abs().mean()),
            "per_pixel": float((diff - annotation_bias_mm(d["pixel_size_mm"])).abs().mean()),
        },
    }


def summarise(d: pd.DataFrame) -> dict[str, Any]:
    """The record this script stores, from the rows of `mask_hcs`."""
    train = d[d["part"] == "train"]
    return {
        "what": "HC of the filled HC18 annotations (ellipse fitted to the mask's boundary, original "
                "resolution) minus the CSV's HC, in mm, and what the shipped correction leaves",
        "estimated_on_train": {
            "per_pixel_px": estimate_bias(train["hc_mask_mm"], train["hc_mm"], train["pixel_size_mm"],
                                          model="per_pixel"),
            "additive_mm": estimate_bias(train["hc_mask_mm"], train["hc_mm"], model="additive"),
        },
        "shipped": {"ANNOTATION_BIAS_PX": ANNOTATION_BIAS_PX, "ANNOTATION_BIAS_MM": ANNOTATION_BIAS_MM},
        "parts": {part: offsets(d[d["part"] == part]) for part in LABELLED_PARTS},
        "all": offsets(d),
    }


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="HC18 folder (default: $HC18_DIR or the cache)")
    p.add_argument("--results", type=Path, required=True, help="the summary JSON")
    return run_script(p, _run, argv)


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    check_new_results(args.results)
    root = data_dir(args.data)
    if not root.is_dir():
        raise FetalheadError(f"{root}: no HC18 folder there (give --data or set $HC18_DIR)")
    record = summarise(mask_hcs(root, threads=min(len(LABELLED_PARTS), os.cpu_count() or 1)))
    record["command"] = "python benchmarks/annotation_offset.py " + " ".join(sys.argv[1:] if argv is None else argv)
    record |= provenance()
    write_results(record, args.results)
    a, est = record["all"], record["estimated_on_train"]
    print(f"all {a['n_images']} images: mask - CSV {a['mean_mm']:+.3f} mm on average, largest "
          f"{a['max_abs_mm']:.3f} mm, {a['n_mask_smaller']} smaller; train estimate "
          f"{est['per_pixel_px']:.3f} px or {est['additive_mm']:.3f} mm")
    for part, r in record["parts"].items():
        left = r["mae_left_mm"]
        print(f"{part:5s} n={r['n_images']}: left {left['uncorrected']:.3f} mm uncorrected, "
              f"{left['additive']:.3f} additive, {left['per_pixel']:.3f} per pixel")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    raise SystemExit(main())
