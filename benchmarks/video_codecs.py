"""Frames of a compressed video: does the codec move the head circumference?

A clip saved as a video (`fetalhead.video`) reaches the network through a lossy codec. Each
labelled image of a part of the split is written as a one-frame video by each codec of
`CODECS` (OpenCV's FFmpeg writer at its default settings), read back the way `fetalhead
predict` reads a clip, and measured by one model; the image as stored (lossless PNG) is the
baseline (4:2:0 codecs drop an odd last row or column of pixels: the origin and the pixel size
stay). Per codec: HC difference from the CSV and ellipse Dice against the annotation (means
with exam-bootstrap intervals, `frame_shapes.canvas_summary`), the mean |HC change| from the
baseline's measurement of the same image, and the mean absolute gray-level change the codec
made to the pixels.

    HC18_DIR=/path/to/hc18 python benchmarks/video_codecs.py --model small --part test \\
        --results results/robustness/video_codecs_small_test.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fetalhead.errors import FetalheadError, run_script
from fetalhead.evaluate import GROSS_ERROR_MM, ellipse_scores
from fetalhead.predict import Predictor
from fetalhead.results import provenance, write_results
from fetalhead.video import read_video_frame

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script frame_shapes.py
from frame_shapes import canvas_summary, load_part, part_parser  # noqa: E402

#: codecs (name: (file suffix, FourCC)); "png" is the image as stored, not a video
CODECS: dict[str, tuple[str, str] | None] = {"png": None, "mp4v": (".mp4", "mp4v"), "mjpeg": (".avi", "MJPG")}


def through_codec(image: np.ndarray, codec: tuple[str, str] | None, folder: Path) -> np.ndarray:
    """`image` (uint8 (H, W)) as one frame of a video of `codec` (suffix, FourCC), written in
    `folder` and read back with `fetalhead.video.read_video_frame`; itself for None."""
    if codec is None:
        return image
    suffix, fourcc = codec
    path = folder / f"frame{suffix}"
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), 25.0,
                             (image.shape[1], image.shape[0]), isColor=True)
    if not writer.isOpened():
        raise FetalheadError(f"OpenCV's FFmpeg cannot write {fourcc} into {suffix} here")
    writer.write(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    writer.release()
    return read_video_frame(path)


def gray_change(seen: np.ndarray, image: np.ndarray) -> float:
    """Mean absolute gray-level difference of two uint8 (H, W) frames over the pixels both hold
    (4:2:0 codecs such as mp4v drop an odd last row or column; the origin stays)."""
    h, w = min(seen.shape[0], image.shape[0]), min(seen.shape[1], image.shape[1])
    return float(np.abs(seen[:h, :w].astype(np.int16) - image[:h, :w]).mean())


def score_codec(predictor: Predictor, items: Sequence[tuple], codec: tuple[str, str] | None,
                batch_size: int = 8) -> pd.DataFrame:
    """One row per item (name, exam, pixel size mm, CSV HC mm, image, annotation) measured after
    `codec`: ellipse Dice, HC (mm) and its difference from the CSV, status, and the mean
    absolute gray-level change of the pixels."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            images = [through_codec(it[4], codec, Path(tmp)) for it in chunk]
            preds = predictor.predict_batch(images, [it[2] for it in chunk], batch_size=batch_size)
            for (name, exam, px, hc, image, gt), seen, pred in zip(chunk, images, preds, strict=True):
                err = pred.hc_mm - hc
                rows.append({"filename": name, "exam": exam, "hc_mm": pred.hc_mm, "hc_error_mm": err,
                             "hc_abs_error_mm": abs(err), "status": pred.status,
                             "ellipse_dice": ellipse_scores(pred.head_ellipse, gt, px)["ellipse_dice"],
                             "gray_change": gray_change(seen, image)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    return run_script(part_parser(Path(__file__).name, __doc__.split("\n\n")[0]), _run, argv)


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    predictor, items = load_part(args)
    tables = {name: score_codec(predictor, items, codec) for name, codec in tqdm(CODECS.items(), desc="codecs")}
    base = tables["png"].set_index("filename")["hc_mm"]
    codecs = {}
    for name, table in tables.items():
        change = (table.set_index("filename")["hc_mm"] - base).abs()
        codecs[name] = {"container_and_fourcc": CODECS[name], **canvas_summary(table),
                        "hc_change_mm_mean": float(change.mean()), "hc_change_mm_max": float(change.max()),
                        "gray_change_mean": float(table["gray_change"].mean())}
    record = {
        "what": "each image as one frame of a video of each codec (OpenCV's FFmpeg writer, default settings), "
                "read back as fetalhead predict reads a clip, against the image as stored",
        "model": predictor.weights, "part": args.part,
        "n_images": len(items), "gross_error_mm": GROSS_ERROR_MM, "codecs": codecs,
        "command": "python benchmarks/video_codecs.py " + " ".join(sys.argv[1:] if argv is None else argv),
        **provenance(),
    }
    write_results(record, args.results)
    for name, c in codecs.items():
        print(f"{name:>6}: HC {c['hc_abs_error_mm']['mean']:.2f} mm, ellipse Dice {100 * c['ellipse_dice']['mean']:.2f} %, "
              f"{c['n_gross']} gross; HC moved {c['hc_change_mm_mean']:.2f} mm on average (at most "
              f"{c['hc_change_mm_max']:.2f}); gray levels moved {c['gray_change_mean']:.2f}")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    raise SystemExit(main())
