"""Would another way from the mask to the ellipse measure HC better? Out-of-fold answers.

The small model's HC errors out of fold (`benchmarks/out_of_fold.py`) come from the images:
two seeds and two networks share them. This script asks whether the step after the network
(the least-squares ellipse through the mask's boundary) leaves accuracy behind. For each fold
model and each image it held out, HC (mm, minus the annotation bias) from:

- `library`: the library's measurement (`fetalhead.predict.measure`);
- `no_data_aware`: the same fit without the boundary pixels within 3 px of the image's
  no-data area (black boxes and the outside of the fan: all-zero 7x7 windows) or its border,
  where the mask follows the lack of signal rather than the skull;
- `moments`: the ellipse of the mask's second moments (semi-axes 2 sqrt(eigenvalue));
- `sharpest_70`: the fit through the 70 % of the boundary pixels where the probability
  changes fastest (the confident parts of the outline);
- `image_edges_4px`: each of 180 points of the fitted ellipse moved along its normal, within
  +-4 px, to the strongest bright-to-dark step outwards (the skull's outer edge), then refitted
  without the weakest 30 % and the outlying moves.

For each: HC mean absolute and signed difference, median, gross errors (|difference| > 6 mm),
and the mean absolute difference once the variant's own median offset is removed (taken from
the truth, so an optimistic bound for variants with another bias convention).

    python benchmarks/fit_variants.py --rows results/review/out_of_fold_small.csv \\
        --models runs/oof --results results/review/fit_variants_small.json
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fetalhead.data import data_dir
from fetalhead.device import device_name, resolve_device
from fetalhead.ellipse import (
    Ellipse,
    annotation_bias_mm,
    ellipse_points,
    fit_ellipse_points,
    largest_component_boundary,
)
from fetalhead.errors import run_script
from fetalhead.evaluate import GROSS_ERROR_MM
from fetalhead.predict import Predictor, measure
from fetalhead.results import check_new_results, provenance, write_results

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script out_of_fold.py
from out_of_fold import held_out_parser, held_out_passes  # noqa: E402

VARIANTS = ("library", "no_data_aware", "moments", "sharpest_70", "image_edges_4px")
NO_DATA_WINDOW = 7  #: px: a pixel is "no data" when this window around it is all zero
NO_DATA_MARGIN = 3  #: px: boundary pixels this close to no data are left out
MIN_KEPT = 0.5  #: the no-data-aware fit needs at least this share of the boundary, else the library's
SHARPEST = 0.7  #: share of the boundary kept by `sharpest_70`
EDGE_REACH = 4.0  #: px along the normal searched by `image_edges_4px`
EDGE_POINTS = 180


def _hc(ellipse: Ellipse | None, pixel_size_mm: float) -> float:
    if ellipse is None:
        return float("nan")
    return ellipse.circumference * pixel_size_mm - float(annotation_bias_mm(pixel_size_mm))


def no_data(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) image -> bool (H, W): the centres of all-zero `NO_DATA_WINDOW` windows
    (the zero area shrunk by half a window, so that dark speckle does not count) and the border
    row and column on each side."""
    zero = (image == 0).astype(np.uint8)
    out = cv2.erode(zero, np.ones((NO_DATA_WINDOW, NO_DATA_WINDOW), np.uint8),
                    borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    out[[0, -1], :] = True
    out[:, [0, -1]] = True
    return out


def hc_no_data_aware(mask: np.ndarray, image: np.ndarray, pixel_size_mm: float) -> float:
    """HC (mm) of the fit through the mask's boundary pixels that are farther than
    `NO_DATA_MARGIN` px from `no_data(image)`; the whole boundary when fewer than `MIN_KEPT`."""
    points = largest_component_boundary(mask.astype(np.uint8))
    if points is None:
        return float("nan")
    size = 2 * (NO_DATA_WINDOW // 2 + NO_DATA_MARGIN) + 1  # the erosion's shrink back, then the margin
    near = cv2.dilate(no_data(image).astype(np.uint8), np.ones((size, size), np.uint8)) > 0
    keep = ~near[points[:, 1], points[:, 0]]
    return _hc(fit_ellipse_points(points[keep] if keep.mean() >= MIN_KEPT else points, mask.shape), pixel_size_mm)


def hc_moments(mask: np.ndarray, pixel_size_mm: float) -> float:
    """HC (mm) of the ellipse with the second moments of the mask: semi-axes 2 sqrt(eigenvalue)
    of the covariance of its pixel coordinates (px^2)."""
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    if m["m00"] <= 0:
        return float("nan")
    cov = np.array([[m["mu20"], m["mu11"]], [m["mu11"], m["mu02"]]]) / m["m00"]
    small, large = np.clip(np.linalg.eigvalsh(cov), 0.0, None)
    e = Ellipse(m["m10"] / m["m00"], m["m01"] / m["m00"], 2 * math.sqrt(large), 2 * math.sqrt(small), 0.0)
    return _hc(e, pixel_size_mm)


def hc_sharpest(mask: np.ndarray, prob: np.ndarray, pixel_size_mm: float, keep: float = SHARPEST) -> float:
    """HC (mm) of the fit through the `keep` share of the boundary pixels where the probability
    map float32 (H, W) has the steepest (5x5-smoothed Sobel) gradient."""
    points = largest_component_boundary(mask.astype(np.uint8))
    if points is None:
        return float("nan")
    p = np.asarray(prob, np.float32)
    grad = cv2.GaussianBlur(np.hypot(cv2.Sobel(p, cv2.CV_32F, 1, 0), cv2.Sobel(p, cv2.CV_32F, 0, 1)), (5, 5), 0)
    g = grad[points[:, 1], points[:, 0]]
    return _hc(fit_ellipse_points(points[g >= np.quantile(g, 1.0 - keep)], mask.shape), pixel_size_mm)


def outward_normals(e: Ellipse, points: np.ndarray) -> np.ndarray:
    """Unit outward normals (N, 2) of ellipse `e` at its points (N, 2), as (x, y)."""
    c, s = math.cos(e.angle_rad), math.sin(e.angle_rad)
    d = points - np.array([e.cx, e.cy])
    u, v = d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c
    gu, gv = u / e.a ** 2, v / e.b ** 2
    n = np.stack([gu * c - gv * s, gu * s + gv * c], axis=1)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def hc_image_edges(e: Ellipse | None, image: np.ndarray, pixel_size_mm: float, reach: float = EDGE_REACH) -> float:
    """HC (mm) after moving `EDGE_POINTS` points of the fitted ellipse `e` (px) along their
    normals, within +-`reach` px, to the strongest outward bright-to-dark step of the image
    (smoothed, sigma 1.5 px); the weakest 30 % of steps and moves more than 3 median absolute
    deviations (+0.5 px) from the median move are left out of the refit."""
    if e is None:
        return float("nan")
    img = cv2.GaussianBlur(np.asarray(image, np.float32), (0, 0), 1.5)
    pts = ellipse_points(e, EDGE_POINTS)
    normal = outward_normals(e, pts)
    steps = np.arange(-reach, reach + 0.25, 0.5)
    profile = np.stack([cv2.remap(img, (pts[:, 0] + t * normal[:, 0]).astype(np.float32)[None],
                                  (pts[:, 1] + t * normal[:, 1]).astype(np.float32)[None],
                                  cv2.INTER_LINEAR, borderValue=0)[0] for t in steps], axis=1)
    slope = np.diff(profile, axis=1)
    j = np.argmin(slope, axis=1)
    strength = -slope[np.arange(len(pts)), j]
    move = (steps[j] + steps[j + 1]) / 2
    keep = strength > np.quantile(strength, 0.3)
    centre = np.median(move[keep])
    spread = np.median(np.abs(move[keep] - centre)) + 0.5
    keep &= np.abs(move - centre) < 3 * spread
    return _hc(fit_ellipse_points((pts + move[:, None] * normal)[keep], image.shape), pixel_size_mm)


def variants(prob: np.ndarray, image: np.ndarray, pixel_size_mm: float,
             predictor: Predictor | None = None) -> dict[str, float]:
    """HC (mm) of every variant in `VARIANTS` for one probability map and its image, both (H, W);
    "library" is `predictor`'s measurement (its threshold and bias for the frame), else `measure`'s."""
    p = predictor.measure(prob, pixel_size_mm) if predictor is not None else measure(prob, pixel_size_mm)
    if p.ellipse is None:
        return dict.fromkeys(VARIANTS, float("nan"))
    # the others subtract HC18's correction (`_hc`): on a frame of another size, the library's
    shift = p.bias_mm - float(annotation_bias_mm(pixel_size_mm))
    others = {"no_data_aware": hc_no_data_aware(p.mask, image, pixel_size_mm),
              "moments": hc_moments(p.mask, pixel_size_mm), "sharpest_70": hc_sharpest(p.mask, prob, pixel_size_mm),
              "image_edges_4px": hc_image_edges(p.ellipse, image, pixel_size_mm)}
    return {"library": p.hc_mm, **{k: v - shift for k, v in others.items()}}


def summary(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per variant: HC mean absolute and signed difference, median absolute (mm), gross errors,
    and the mean absolute difference without the variant's median offset."""
    out = {}
    for v in VARIANTS:
        err = table[f"hc_{v}_mm"] - table["hc_true_mm"]
        out[v] = {"hc_abs_error_mm": float(err.abs().mean()), "hc_error_mm": float(err.mean()),
                  "median_abs_error_mm": float(err.abs().median()),
                  "n_gross": int((err.abs() > GROSS_ERROR_MM).sum() + err.isna().sum()),
                  "hc_abs_error_offset_removed_mm": float((err - err.median()).abs().mean())}
    return out


def main(argv: list[str] | None = None) -> int:
    return run_script(held_out_parser(Path(__file__).name, __doc__.split("\n\n")[0]), _run, argv)


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    check_new_results(args.results)

    def per_batch(fold: int, model: Predictor, images: list[np.ndarray], sizes: list[float]) -> list[dict[str, float]]:
        return [{f"hc_{v}_mm": hc for v, hc in variants(prob, image, px, model).items()}
                for image, prob, px in zip(images, model.probabilities(images), sizes, strict=True)]

    table = held_out_passes(args.rows, args.models, data_dir(args.data), per_batch)
    record = {
        "what": "ways from the mask to the HC, on out-of-fold predictions",
        "n_images": len(table), "variants": summary(table),
        "command": "python benchmarks/fit_variants.py " + " ".join(argv or sys.argv[1:]),
        **provenance(device_name(resolve_device())),
    }
    written = write_results(record, args.results)
    table.to_csv(Path(written).with_suffix(".csv"), index=False)
    for v, r in record["variants"].items():
        print(f"{v}: HC mean abs. diff. {r['hc_abs_error_mm']:.3f} mm (offset removed "
              f"{r['hc_abs_error_offset_removed_mm']:.3f}), mean diff. {r['hc_error_mm']:+.3f}, "
              f"{r['n_gross']} gross", flush=True)
    print(f"results: {written}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
