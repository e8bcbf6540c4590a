"""Is a held-out part harder than another because of the images it holds? Its mix of pixel sizes.

The HC error in mm grows with the pixel size (a pixel of outline costs more millimetres on a
coarse image), and the parts of the split hold different shares of coarse images. The
out-of-fold predictions of the train part (`benchmarks/out_of_fold.py`: each image scored by a
model that never saw its examination) give the mean absolute HC error per band of pixel size;
weighing the bands by a part's own shares of images gives the error that its mix alone would
predict. Only pixel sizes are read for the parts (an input, not a label); the figures are those
of the out-of-fold models, to compare parts with each other, not with the shipped models.

    HC18_DIR=/path/to/hc18 python benchmarks/part_mix.py --rows results/review/out_of_fold_small.csv \\
        --results results/review/part_mix_small.json
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fetalhead.data import read_image_table, read_test_csv, read_training_csv
from fetalhead.errors import FetalheadError, OneLineParser, run_script
from fetalhead.results import check_new_results, provenance, write_results
from fetalhead.split import PARTS, load_split

#: the columns of the out-of-fold table (benchmarks/out_of_fold.py) this script reads
COLUMNS = ("filename", "pixel_size_mm", "hc_abs_error_mm")
#: band edges of pixel size, mm per pixel (HC18 spans 0.05 to 0.39)
EDGES_MM = (0.0, 0.1, 0.125, 0.15, 0.2, 0.25, math.inf)


def band_of(pixel_size_mm: np.ndarray, edges: tuple[float, ...] = EDGES_MM) -> np.ndarray:
    """Band index of each pixel size (mm): band i holds edges[i] < size <= edges[i + 1]."""
    return np.searchsorted(np.asarray(edges[1:-1]), np.asarray(pixel_size_mm, float), side="left")


def expected_errors(rows: pd.DataFrame, parts: pd.DataFrame,
                    edges: tuple[float, ...] = EDGES_MM) -> dict[str, dict]:
    """Per band, the out-of-fold `rows`' n and mean |HC error| (mm); per part of `parts`
    (columns split, pixel_size_mm), its n, its share of images per band and the mean |HC error|
    those shares predict (mm). FetalheadError when a part has images in a band without rows."""
    n_bands = len(edges) - 1
    oof_band = band_of(rows["pixel_size_mm"].to_numpy(float), edges)
    err = rows["hc_abs_error_mm"].to_numpy(float)
    n_per = np.bincount(oof_band, minlength=n_bands)
    mae_per = np.array([err[oof_band == b].mean() if n_per[b] else math.nan for b in range(n_bands)])
    out: dict[str, dict] = {"out_of_fold": {"n": int(len(rows)), "n_per_band": n_per.tolist(),
                                            "mae_per_band_mm": mae_per.tolist(), "mae_mm": float(err.mean())}}
    for part, group in parts.groupby("split", sort=False):
        share = np.bincount(band_of(group["pixel_size_mm"].to_numpy(float), edges), minlength=n_bands) / len(group)
        empty = [b for b in range(n_bands) if share[b] > 0 and n_per[b] == 0]
        if empty:
            raise FetalheadError(f"part {part}: images with pixel sizes in ({edges[empty[0]]:g}, "
                                 f"{edges[empty[0] + 1]:g}] mm, where the rows have none")
        out[str(part)] = {"n": int(len(group)), "share_per_band": share.tolist(),
                          "expected_mae_mm": float(np.nansum(share * mae_per))}
    return out


def hc18_parts(root: Path | None = None) -> pd.DataFrame:
    """Every HC18 image's part of the committed split (train, val, test, challenge) and its pixel
    size (mm), from the two CSVs."""
    split = load_split(include_challenge=True, root=root)
    sizes = pd.concat([read_training_csv(root).assign(split_set="training"),
                       read_test_csv(root).assign(split_set="challenge")], ignore_index=True)
    split["split_set"] = np.where(split["split"] == "challenge", "challenge", "training")
    merged = split.merge(sizes[["filename", "split_set", "pixel_size_mm"]], on=["filename", "split_set"],
                         how="left", validate="one_to_one")
    return merged[["filename", "split", "pixel_size_mm"]]


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=Path, required=True,
                   help="the out-of-fold per-image table of benchmarks/out_of_fold.py")
    p.add_argument("--data", type=Path, default=None, help="the HC18 folder (default: $HC18_DIR)")
    p.add_argument("--results", type=Path, required=True, help="the summary JSON")
    return run_script(p, _run, argv)


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    check_new_results(args.results)
    rows = read_image_table(args.rows, COLUMNS, "out-of-fold table of benchmarks/out_of_fold.py")
    if rows.empty:
        raise FetalheadError(f"{args.rows}: no images listed")
    parts = hc18_parts(args.data)
    figures = expected_errors(rows, parts)
    record = {
        "what": "mean |HC error| (mm) of out-of-fold predictions per band of pixel size, and what each "
                "part's own mix of pixel sizes predicts from them",
        "rows": str(args.rows), "bands_mm": [f"({lo:g}, {hi:g}]" for lo, hi in itertools.pairwise(EDGES_MM)],
        **figures,
        "command": "python benchmarks/part_mix.py " + " ".join(sys.argv[1:] if argv is None else argv),
        **provenance(),
    }
    write_results(record, args.results)
    said = ", ".join(f"{part} {figures[part]['expected_mae_mm']:.2f}" for part in PARTS if part in figures)
    print(f"mean |HC error| its mix of pixel sizes predicts (mm): {said}; wrote {args.results}")


if __name__ == "__main__":
    raise SystemExit(main())
