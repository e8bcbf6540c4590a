"""Binary-mask metrics: overlap (Dice, IoU, accuracy) and surface distances in millimetres.

All NumPy metrics take masks at the ORIGINAL image resolution (HC18: mostly 540 x 800, a few up to 563 rows high):
resize a prediction made at the network's size back to the image's size first (nearest
neighbour, or threshold the resized probabilities), otherwise `pixel_size_mm` does not apply
and the scores are not comparable with the challenge's.

Conventions when a mask is empty (no head): Dice, IoU and accuracy are 1 when BOTH masks are
empty and Dice/IoU are 0 when exactly one is; the surface distances are 0 when both are empty
and NaN when exactly one is (no surface to measure from); `summarize` reports how many values
are finite.

Surface = boundary pixels: foreground pixels with a background 4-neighbour, pixels outside
the image counting as background. Distances between pixel centres are exact Euclidean
(cv2.distanceTransform, DIST_L2 with DIST_MASK_PRECISE), scaled by the isotropic pixel size.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pandas as pd
import torch

from fetalhead.errors import FetalheadError
from fetalhead.inputs import binary_mask, validate_pixel_size

__all__ = [
    "METRICS",
    "assd_mm",
    "boundary",
    "dice",
    "dice_batch",
    "hausdorff_mm",
    "iou",
    "pixel_accuracy",
    "score_pair",
    "summarize",
]

#: Names of the metrics `score_pair` returns, in order.
METRICS: tuple[str, ...] = ("dice", "iou", "pixel_accuracy", "hausdorff_mm", "assd_mm")

_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)  # 4-neighbourhood


def _as_bool(mask: np.ndarray) -> np.ndarray:
    arr = binary_mask(mask)
    if arr.ndim != 2:
        raise FetalheadError(f"expected an (H, W) mask, got shape {arr.shape}")
    return arr


def _pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_bool(pred), _as_bool(target)
    if p.shape != t.shape:
        raise FetalheadError(
            f"prediction shape {p.shape} != target shape {t.shape}: resize predictions to "
            "the original image size first"
        )
    return p, t


def dice(pred: np.ndarray, target: np.ndarray) -> float:
    """Dice 2|P n T| / (|P| + |T|) of two (H, W) binary masks; 1.0 when both are empty."""
    p, t = _pair(pred, target)
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(p, t).sum()) / total


def iou(pred: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union (Jaccard) of two (H, W) binary masks; 1.0 when both are empty."""
    p, t = _pair(pred, target)
    union = int(np.logical_or(p, t).sum())
    return 1.0 if union == 0 else int(np.logical_and(p, t).sum()) / union


def pixel_accuracy(pred: np.ndarray, target: np.ndarray) -> float:
    """Fraction of pixels where the (H, W) binary masks agree (dominated by background)."""
    p, t = _pair(pred, target)
    return float((p == t).mean())


def boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of an (H, W) binary mask: bool (H, W), see the module docstring."""
    m = _as_bool(mask).astype(np.uint8)
    # Zero border: a head cut by the image edge has its surface there.
    eroded = cv2.erode(m, _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (m - eroded).astype(bool)


def _distances_to(surface: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Euclidean distance (pixels) from each True pixel of `points` to the nearest of `surface`."""
    # distanceTransform measures to the nearest ZERO pixel, so zero the surface pixels.
    field = cv2.distanceTransform(
        np.where(surface, 0, 1).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
    )
    return field[points].astype(np.float64)


def _surface_distances(
    pred: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """(pred -> target, target -> pred) boundary distances in pixels; None if one is empty."""
    p, t = _pair(pred, target)
    bp, bt = boundary(p), boundary(t)
    if not bp.any() or not bt.any():
        return None
    return _distances_to(bt, bp), _distances_to(bp, bt)


def _surface_stat(pred: np.ndarray, target: np.ndarray, pixel_size_mm: float,
                  reduce: Callable[[np.ndarray, np.ndarray], float]) -> float:
    """`reduce(d(P->T), d(T->P))` in mm; 0 if both masks are empty, nan if only one is;
    FetalheadError for a pixel size `fetalhead.inputs.validate_pixel_size` refuses."""
    px = validate_pixel_size(pixel_size_mm)
    p, t = _pair(pred, target)
    if not p.any() and not t.any():
        return 0.0
    d = _surface_distances(p, t)
    if d is None:
        return float("nan")
    return float(reduce(*d)) * px


def hausdorff_mm(pred: np.ndarray, target: np.ndarray, pixel_size_mm: float) -> float:
    """Symmetric Hausdorff distance (mm) between the mask boundaries: the largest distance from
    a boundary pixel of one mask to the other's boundary. 0 if both empty, nan if one is."""
    return _surface_stat(pred, target, pixel_size_mm, lambda pt, tp: max(pt.max(), tp.max()))


def assd_mm(pred: np.ndarray, target: np.ndarray, pixel_size_mm: float) -> float:
    """Average symmetric surface distance (mm): mean of all boundary-to-boundary distances in
    both directions, (sum d(P->T) + sum d(T->P)) / (|dP| + |dT|). 0 if both empty, nan if one
    is."""
    return _surface_stat(pred, target, pixel_size_mm,
                         lambda pt, tp: (pt.sum() + tp.sum()) / (pt.size + tp.size))


def score_pair(pred: np.ndarray, target: np.ndarray, pixel_size_mm: float) -> dict[str, float]:
    """All `METRICS` for one (H, W) prediction / ground-truth pair at original resolution."""
    p, t = _pair(pred, target)
    return {
        "dice": dice(p, t),
        "iou": iou(p, t),
        "pixel_accuracy": pixel_accuracy(p, t),
        "hausdorff_mm": hausdorff_mm(p, t, pixel_size_mm),
        "assd_mm": assd_mm(p, t, pixel_size_mm),
    }


def summarize(df: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Mean, std, median and n (finite values) of each metric column (rows: metrics).

    `columns` defaults to the `METRICS` present in `df`, else every numeric column. NaN
    values (e.g. distances when one mask is empty) are left out; compare n with len(df).
    """
    if columns is None:
        columns = [c for c in METRICS if c in df.columns]
        if not columns:
            columns = list(df.select_dtypes("number").columns)
    values = df[columns].astype(float).replace([np.inf, -np.inf], np.nan)
    return pd.DataFrame(
        {
            "mean": values.mean(),
            "std": values.std(),
            "median": values.median(),
            "n": values.notna().sum(),
        }
    )


@torch.no_grad()
def dice_batch(
    pred: torch.Tensor, target: torch.Tensor, from_logits: bool = True, threshold: float = 0.5
) -> torch.Tensor:
    """Hard Dice per image for training-time validation, at the network's resolution.

    Args:
        pred: (B, 1, H, W) or (B, H, W) logits (`from_logits=True`) or probabilities.
        target: same shape, {0, 1}.
        threshold: probability threshold (applied after the sigmoid for logits).
    Returns: (B,) float32 tensor; 1.0 for an image where both masks are empty.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    probs = torch.sigmoid(pred.float()) if from_logits else pred.float()
    p = (probs > threshold).flatten(1).float()
    t = (target > 0.5).flatten(1).float()
    inter = (p * t).sum(dim=1)
    total = p.sum(dim=1) + t.sum(dim=1)
    return torch.where(total > 0, 2.0 * inter / total.clamp_min(1.0), torch.ones_like(total))
