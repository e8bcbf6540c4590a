"""Frames of another shape than HC18's: padded to HC18's shape first, or resized as they are?

Scanners export frames of many shapes (4:3, square, 16:9), with black around the sector. Each
labelled image of a part of the split is put, with its annotation, in the middle of a black
canvas of such a shape and measured twice by one model: its frame padded to HC18's shape
before it is resized to the network's size (`fetalhead.frame`, the Predictor's way) and
resized as it is (`Predictor(pad_frames=False)`). The pixel size stays, so HC is compared with
the CSV and the fitted ellipse with the annotation's, as `fetalhead evaluate` does; HC18's own
shape is the baseline (both ways measure it alike: it is not padded).

    HC18_DIR=/path/to/hc18 python benchmarks/frame_shapes.py --model default --part val \\
        --results results/robustness/frame_shapes_default_val.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fetalhead.data import annotation_path, image_path, load_pair, read_training_csv
from fetalhead.errors import FetalheadError, OneLineParser, run_script
from fetalhead.evaluate import GROSS_ERROR_MM, ellipse_scores, summary_table
from fetalhead.frame import FramePad, frame_padding, pad_frame
from fetalhead.paths import SHIPPED_MODELS, data_dir
from fetalhead.predict import STATUS_NO_HEAD, STATUS_REVIEW, Predictor
from fetalhead.results import check_new_results, provenance, write_results
from fetalhead.split import LABELLED_PARTS, load_split

#: canvases (name: height / width; None: the image as it is, HC18's 540x800)
CANVASES: dict[str, float | None] = {"hc18": None, "4:3": 3 / 4, "square": 1.0, "16:9": 9 / 16}
#: the figures kept per canvas and way (means with exam-bootstrap intervals)
FIGURES = ("ellipse_dice", "hc_abs_error_mm", "hc_error_mm")


def canvas_padding(shape: tuple[int, int], aspect: float | None) -> FramePad:
    """Black pixels around a frame of `shape` (H, W) that make it `aspect` (height / width),
    centred (`fetalhead.frame.frame_padding` without tolerance); none for None."""
    return FramePad(0, 0, 0, 0) if aspect is None else frame_padding(shape, aspect, tolerance=0.0)


def score_canvas(predictor: Predictor, items: Sequence[tuple[str, int, float, float, np.ndarray, np.ndarray]],
                 aspect: float | None, batch_size: int = 8) -> pd.DataFrame:
    """One row per item (name, exam, pixel size mm, CSV HC mm, image, annotation) measured on a
    canvas of height / width `aspect`: ellipse Dice against the annotation on the same canvas,
    HC difference (pred - CSV, mm) and status."""
    rows = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        pads = [canvas_padding(it[4].shape, aspect) for it in chunk]
        images = [pad_frame(it[4], p) for it, p in zip(chunk, pads, strict=True)]
        preds = predictor.predict_batch(images, [it[2] for it in chunk], batch_size=batch_size)
        for (name, exam, px, hc, _, gt), pad, pred in zip(chunk, pads, preds, strict=True):
            err = pred.hc_mm - hc
            dice = ellipse_scores(pred.head_ellipse, pad_frame(gt, pad), px)["ellipse_dice"]
            rows.append({"filename": name, "exam": exam, "ellipse_dice": dice, "hc_error_mm": err,
                         "hc_abs_error_mm": abs(err), "status": pred.status})
    return pd.DataFrame(rows)


def canvas_summary(df: pd.DataFrame) -> dict:
    """`FIGURES` (mean, 95 % exam-bootstrap interval, n) and the counts of gross errors
    (|HC difference| > `GROSS_ERROR_MM`), review flags and images without a head."""
    table = summary_table(df)
    out = {m: {"mean": float(table.loc[m, "mean"]), "ci": [float(table.loc[m, "ci_low"]), float(table.loc[m, "ci_high"])],
               "n": int(table.loc[m, "n"])} for m in FIGURES}
    out["n_gross"] = int((df["hc_abs_error_mm"] > GROSS_ERROR_MM).sum())
    out["n_review"] = int((df["status"] == STATUS_REVIEW).sum())
    out["n_no_head"] = int((df["status"] == STATUS_NO_HEAD).sum())
    return out


def load_items(part: str, root: Path, limit: int | None = None) -> list[tuple]:
    """(name, exam, pixel size mm, CSV HC mm, image, annotation) of the part's images, by name."""
    split = load_split(root=root)
    table = read_training_csv(root).merge(split[["filename", "split"]], on="filename").query("split == @part")
    table = table.sort_values("filename")
    if limit is not None:
        table = table.head(limit)
    if table.empty:
        raise FetalheadError(f"no labelled images of part {part!r} in {root}")
    items = []
    for row in tqdm(table.itertuples(), total=len(table), desc="load", unit="image", leave=False):
        image, mask = load_pair(image_path(row.filename, root=root), annotation_path(row.filename, root))
        items.append((row.filename, int(row.exam), float(row.pixel_size_mm), float(row.hc_mm), image, mask))
    return items


def part_parser(script: str, description: str) -> OneLineParser:
    """The options of a script that measures one model on one labelled part (--model |
    --checkpoint, --part, --limit, --data, --results), for `load_part`."""
    p = OneLineParser(prog=script, description=description)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", choices=SHIPPED_MODELS, default=None, help="a shipped model (default: the best)")
    which.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint of your own")
    p.add_argument("--part", choices=LABELLED_PARTS, default="val", help="labelled part of the split (default val)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (by name)")
    p.add_argument("--data", type=Path, default=None, help="the HC18 folder (default: $HC18_DIR)")
    p.add_argument("--results", type=Path, required=True, help="the summary JSON")
    return p


def load_part(args: argparse.Namespace) -> tuple[Predictor, list[tuple]]:
    """The predictor and `load_items` of a `part_parser` script's options, after checking that
    its results file is new and its limit positive (one-line FetalheadErrors)."""
    check_new_results(args.results)
    if args.limit is not None and args.limit < 1:
        raise FetalheadError(f"--limit must be at least 1, got {args.limit}")
    predictor = Predictor.from_checkpoint(args.checkpoint, model=args.model, device="cpu")
    return predictor, load_items(args.part, data_dir(args.data), args.limit)


def main(argv: list[str] | None = None) -> int:
    return run_script(part_parser(Path(__file__).name, __doc__.split("\n\n")[0]), _run, argv)


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    predictor, items = load_part(args)
    canvases = {}
    for name, aspect in tqdm(CANVASES.items(), desc="canvases", unit="canvas"):
        pad = canvas_padding(items[0][4].shape, aspect)
        shape = [items[0][4].shape[0] + pad.top + pad.bottom, items[0][4].shape[1] + pad.left + pad.right]
        ways = {}
        for way, pad_frames in (("padded", True), ("resized as it is", False)):
            predictor.pad_frames = pad_frames
            ways[way] = canvas_summary(score_canvas(predictor, items, aspect))
        canvases[name] = {"aspect": aspect, "canvas_of_a_540x800_image": shape, **ways}
    record = {
        "what": "frames put in the middle of black canvases of other shapes, measured padded to HC18's shape "
                "before resizing (the Predictor's way) and resized as they are",
        "model": predictor.weights, "part": args.part,
        "n_images": len(items), "gross_error_mm": GROSS_ERROR_MM, "canvases": canvases,
        "command": "python benchmarks/frame_shapes.py " + " ".join(sys.argv[1:] if argv is None else argv),
        **provenance(),
    }
    write_results(record, args.results)
    for name, c in canvases.items():
        said = "; ".join(f"{way}: HC {c[way]['hc_abs_error_mm']['mean']:.2f} mm, {c[way]['n_gross']} gross"
                         for way in ("padded", "resized as it is"))
        print(f"{name:>7}: {said}")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    raise SystemExit(main())
