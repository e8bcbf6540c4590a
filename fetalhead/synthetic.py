"""Synthetic ultrasound-like data with known heads, so tests, demos and quick benchmarks need no
download.

A head is an ellipse drawn bright on noise: image = clip(N(40, 12) + 80 x filled ellipse) in
grey levels, uint8 (H, W); its mask is the filled ellipse, uint8 {0,1}. The same drawing gives

- `synthetic_set`: an `ArraySet` of images and masks (training tests, `fetalhead bench --quick`);
- `synthetic_cases`: cases whose "prediction" is a probability map of a deliberately wrong
  ellipse (the prediction viewer's demo and tests);
- `write_synthetic_hc18`: an HC18-shaped folder (real HC18 file names, PNG images and
  annotations, both CSVs) for the tests of everything that reads HC18.

Seeds are the caller's: the same arguments give the same data, byte for byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd

from fetalhead.ellipse import Ellipse

if TYPE_CHECKING:  # pragma: no cover
    from fetalhead.cache import ArraySet

__all__ = [
    "SYNTH_SIZE",
    "Box",
    "SyntheticCases",
    "draw_head",
    "head_image",
    "random_box",
    "soft_probability",
    "synthetic_cases",
    "synthetic_set",
    "write_synthetic_hc18",
]

SYNTH_SIZE = (64, 96)  #: (H, W) pixels of the tests' synthetic images
#: an OpenCV rotated rectangle ((cx, cy), (width, height), angle in degrees), pixels: how
#: cv2.ellipse draws an ellipse (`Ellipse.from_box` converts it)
Box = tuple[tuple[float, float], tuple[float, float], float]


def random_box(rng: np.random.Generator, size: tuple[int, int]) -> Box:
    """A random head in an image of `size` (H, W): centre within 4 pixels of the image centre,
    semi-axes 0.2-0.3 of the width and of the height (so no rotation takes it past the border),
    any angle."""
    h, w = size
    cx, cy = w / 2 + rng.uniform(-4, 4), h / 2 + rng.uniform(-4, 4)
    a, b = rng.uniform(0.2, 0.3) * w, rng.uniform(0.2, 0.3) * h
    return (cx, cy), (2 * a, 2 * b), float(rng.uniform(0, 180))


def draw_head(box: Box, size: tuple[int, int], thickness: int = -1) -> np.ndarray:
    """uint8 {0,1} (H, W): the ellipse `box` filled (`thickness` -1) or its outline `thickness`
    pixels wide, drawn by cv2.ellipse (pixels touched by the outline count)."""
    mask = np.zeros(size, np.uint8)
    cv2.ellipse(mask, box, 1, thickness)
    return mask


def head_image(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (H, W): Gaussian noise (mean 40, SD 12 grey levels) plus 80 inside `mask` {0,1}."""
    noise = rng.normal(40, 12, mask.shape)
    return np.clip(noise + 80 * mask, 0, 255).astype(np.uint8)


def _pixel_sizes(n: int) -> np.ndarray:
    """A different known pixel size (mm) per image: 0.10, 0.11, 0.12, ..."""
    return 0.1 + 0.01 * np.arange(n)


def synthetic_set(n: int, size: tuple[int, int] = SYNTH_SIZE, seed: int = 0,
                  split: str = "train") -> ArraySet:
    """`n` synthetic heads of `size` (H, W) as an ArraySet: images uint8 (n, H, W), masks
    uint8 {0,1} (n, H, W), meta with `cache.META_COLUMNS` (hc_mm = the ellipse's perimeter x
    pixel size, mm)."""
    from fetalhead.cache import ArraySet  # imports torch: only when arrays are asked for

    rng = np.random.default_rng(seed)
    images = np.empty((n, *size), np.uint8)
    masks = np.empty((n, *size), np.uint8)
    hcs = []
    px = _pixel_sizes(n)
    for i in range(n):
        box = random_box(rng, size)
        masks[i] = draw_head(box, size)
        images[i] = head_image(masks[i], rng)
        hcs.append(Ellipse.from_box(box).circumference * px[i])
    meta = pd.DataFrame({"filename": [f"{i:03d}_HC.png" for i in range(n)], "pixel_size_mm": px,
                         "hc_mm": hcs, "exam": np.arange(n), "frame": 0, "split": split,
                         "orig_h": size[0], "orig_w": size[1]})
    return ArraySet(images, masks, meta)


# ---------------------------------------------------------------------- probability maps
def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Signed Euclidean distance (pixels) to the mask boundary: > 0 inside, < 0 outside."""
    inside = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5)
    return (inside - outside).astype(np.float32)


def soft_probability(mask: np.ndarray, edge_px: float) -> np.ndarray:
    """A probability map float32 (H, W) above 0.5 exactly on `mask` uint8 {0,1}: the logistic
    of the signed distance to its boundary (pixels) over `edge_px`."""
    x = _signed_distance(mask) / float(edge_px)
    return (0.5 + 0.5 * np.tanh(0.5 * x)).astype(np.float32)  # the logistic, without overflow


@dataclass(frozen=True)
class SyntheticCases:
    """Synthetic cases with known ellipses and a deliberately wrong "prediction" (no model).

    images uint8 (H, W); masks uint8 {0,1} (H, W); probs float32 (H, W) in [0, 1]; pixel
    sizes and true HC in mm; true and predicted ellipses in pixels.
    """

    images: list[np.ndarray]
    masks: list[np.ndarray]
    probs: list[np.ndarray]
    pixel_sizes_mm: list[float]
    hc_true_mm: list[float]
    filenames: list[str]
    true_ellipses: list[Ellipse]
    pred_ellipses: list[Ellipse]


def synthetic_cases(n: int = 6, size: tuple[int, int] = (216, 320), seed: int = 0,
                    edge_px: float = 1.0) -> SyntheticCases:
    """`n` synthetic heads of `size` (H, W) pixels, each with a probability map.

    The "prediction" is `soft_probability` of a second ellipse whose centre and axes are off by
    2 % to 7 % of the axes, growing with the case number, so Dice falls from case 0 to case
    n-1. The last case (n >= 3) also carries a spurious blob of probability 0.6, which a
    threshold above 0.6 removes. Pixel sizes are drawn so that HC is in the HC18 range.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    out: dict[str, list] = {k: [] for k in SyntheticCases.__dataclass_fields__}
    for k in range(n):
        box = random_box(rng, size)
        truth = Ellipse.from_box(box)
        mask = draw_head(box, size)
        image = head_image(mask, rng)
        err = 0.02 + 0.05 * k / max(n - 1, 1)  # relative error of the fake prediction
        pred = Ellipse(cx=truth.cx + err * truth.a * float(rng.choice([-1, 1])),
                       cy=truth.cy + err * truth.b * float(rng.choice([-1, 1])),
                       a=truth.a * (1 + err), b=truth.b * (1 - err / 2),
                       angle_rad=math.fmod(truth.angle_rad + err, math.pi))
        prob = soft_probability(pred.to_mask(size), edge_px)
        if k == n - 1 and n >= 3:
            blob = np.zeros(size, np.uint8)
            cv2.circle(blob, (int(0.1 * w), int(0.15 * h)), max(3, int(0.07 * w)), 1, -1)
            prob = np.maximum(prob, 0.6 * blob.astype(np.float32))
        px = float(rng.uniform(0.3, 0.4)) * 320.0 / w  # HC about 100-200 mm
        out["images"].append(image)
        out["masks"].append(mask)
        out["probs"].append(prob)
        out["pixel_sizes_mm"].append(px)
        out["hc_true_mm"].append(truth.circumference * px)
        out["filenames"].append(f"synthetic_{k:03d}_HC.png")
        out["true_ellipses"].append(truth)
        out["pred_ellipses"].append(pred)
    return SyntheticCases(**out)


# ---------------------------------------------------------------------- an HC18-shaped folder
def write_synthetic_hc18(root: str | Path, size: tuple[int, int] = SYNTH_SIZE, per_part: int = 2,
                         n_challenge: int = 3, outline: bool = False, seed: int = 0) -> Path:
    """Write a tiny HC18-like folder under `root` and return it.

    File names are real HC18 names taken from the committed split: the first `per_part` exams
    of train, val and test and one multi-frame train exam, with all their frames, and
    `n_challenge` test_set images. Each image is a `head_image` of `size` (H, W); its annotation
    is the ellipse FILLED as 3-channel 0/255 (like HC18 as distributed for this project) or,
    with `outline`, a 1-channel one-pixel ring (like Zenodo). The training CSV's HC is the
    ellipse's perimeter (Ramanujan) times the pixel size, rounded to 0.01 mm like HC18's. The
    ellipses (pixels) are written to `ellipses.csv` beside the CSVs.
    """
    from fetalhead.data import TEST_CSV, TEST_DIR, TRAIN_CSV, TRAIN_DIR
    from fetalhead.split import load_split

    root = Path(root)
    rng = np.random.default_rng(seed)
    split = load_split()
    names: list[str] = []
    for part in ("train", "val", "test"):
        rows = split[split["split"] == part]
        exams = sorted(rows["exam"].unique())[:per_part]
        if part == "train":  # and one exam with several frames
            counts = rows["exam"].value_counts()
            exams.append(int(counts[counts > 1].index.min()))
        names += list(rows.loc[rows["exam"].isin(exams), "filename"])
    names.sort()
    (root / TRAIN_DIR).mkdir(parents=True, exist_ok=True)
    (root / TEST_DIR).mkdir(parents=True, exist_ok=True)

    def write_image(path: Path) -> Box:
        box = random_box(rng, size)
        cv2.imwrite(str(path), head_image(draw_head(box, size), rng))
        return box

    rows_out, ellipses = [], []
    for name, px in zip(names, _pixel_sizes(len(names)), strict=True):
        box = write_image(root / TRAIN_DIR / name)
        ann = 255 * draw_head(box, size, thickness=1 if outline else -1)
        if not outline:
            ann = np.repeat(ann[:, :, None], 3, axis=2)
        cv2.imwrite(str(root / TRAIN_DIR / name.replace(".png", "_Annotation.png")), ann)
        e = Ellipse.from_box(box)
        rows_out.append((name, px, round(e.circumference * px, 2)))
        ellipses.append((name, e.cx, e.cy, e.a, e.b, e.angle_rad))
    pd.DataFrame(rows_out, columns=["filename", "pixel size(mm)", "head circumference (mm)"]).to_csv(
        root / TRAIN_CSV, index=False)
    pd.DataFrame(ellipses, columns=["filename", "cx", "cy", "a", "b", "angle_rad"]).to_csv(
        root / "ellipses.csv", index=False)
    test_rows = []
    for i in range(n_challenge):
        name = f"{i:03d}_HC.png"
        write_image(root / TEST_DIR / name)
        test_rows.append((name, 0.2 + 0.01 * i))
    pd.DataFrame(test_rows, columns=["filename", "pixel size(mm)"]).to_csv(root / TEST_CSV, index=False)
    return root
