"""Ellipse fit, head circumference (HC) in millimetres, challenge rows, gestational age.

Coordinates follow OpenCV's image convention: x is the column, y the row (pointing DOWN), the
origin is the centre of the top-left pixel. An `Ellipse` is the curve
``(cx, cy) + a cos(t) u + b sin(t) v`` with ``u = (cos angle, sin angle)`` and ``v`` the
perpendicular; the angle is measured from +x towards +y (clockwise on screen), in [0, pi), and
`a` >= `b` (a is the semi-major axis). This is cv2.ellipse's convention:
``cv2.ellipse(img, (cx, cy), (a, b), degrees(angle), 0, 360, 1, -1)`` redraws it (cv2 rounds
the angle to whole degrees; `Ellipse.to_mask` does not).

Annotation bias: the filled HC18 annotation masks include the sonographer's drawn line, so an
ellipse fitted to their outer boundary is a parallel curve about 0.93 px outside the annotated
ellipse. A parallel curve at distance t is exactly 2*pi*t longer, so the bias is a constant
number of PIXELS of circumference (`ANNOTATION_BIAS_PX`), i.e. proportional to the pixel size,
not a constant in mm. See `estimate_bias` and `annotation_bias_mm`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fetalhead.errors import FetalheadError
from fetalhead.inputs import binary_mask, validate_pixel_size

if TYPE_CHECKING:  # pragma: no cover
    import os
    from collections.abc import Iterable

    import pandas as pd

__all__ = [
    "ANNOTATION_BIAS_MM",
    "ANNOTATION_BIAS_PX",
    "CENTRE_FIT_SHORTFALL_PX",
    "HADLOCK_HC_RANGE_MM",
    "MIN_BOUNDARY_POINTS",
    "MIN_SEMI_AXIS_PX",
    "SUBMISSION_COLUMNS",
    "Ellipse",
    "annotation_bias_mm",
    "challenge_row",
    "distance_to_ellipse",
    "ellipse_circumference",
    "ellipse_dice",
    "ellipse_hausdorff_px",
    "ellipse_points",
    "estimate_bias",
    "fit_ellipse",
    "fit_ellipse_points",
    "gestational_age_weeks",
    "hc_from_mask",
    "head_ellipse",
    "largest_component_boundary",
    "prediction_bias_px",
    "reference_mask_hcs",
]

#: Column order of an HC18 challenge submission (hc18.grand-challenge.org): lengths in mm.
SUBMISSION_COLUMNS: tuple[str, ...] = (
    "filename",
    "center_x_mm",
    "center_y_mm",
    "semi_axes_a_mm",
    "semi_axes_b_mm",
    "angle_rad",
)

#: Fewer boundary points than this means "no head" (cv2.fitEllipse itself needs at least 5).
MIN_BOUNDARY_POINTS = 10
#: A fitted semi-minor axis below this (pixels) is a line, not a head: "no head".
MIN_SEMI_AXIS_PX = 1.0

# Estimated on the TRAINING split only (693 images of fetalhead/splits/hc18_split.csv) by
# `python benchmarks/annotation_offset.py --results results/annotation/offset.json`,
# which stores the estimates and, per part, what each correction leaves (tests/test_bias.py
# recomputes them from the data; tests/test_annotation_offset.py checks these constants).
#: HC from a filled GT mask minus the CSV HC, in pixels of circumference (2*pi * ~0.93 px).
ANNOTATION_BIAS_PX = 5.816
#: How far (px) `fit_ellipse` comes out inside an ellipse from the mask of the pixels whose
#: centres lie inside it, as a shortfall of the semi-axes (perimeter / 2 pi): a predicted mask
#: is such a mask (probabilities thresholded at pixel centres). 0.45 on random ellipses of HC18's
#: sizes (tests/test_ellipse.py measures it).
CENTRE_FIT_SHORTFALL_PX = 0.45
#: The same bias as one constant in mm (additive model; less accurate, kept for reference).
ANNOTATION_BIAS_MM = 0.761

# Hadlock et al. 1984 (Radiology 152:497-501) fitted GA on fetuses of about 14 to 42 weeks;
# inverting GA(HC) = 14 and 42 weeks gives this HC range in mm (see gestational_age_weeks).
HADLOCK_HC_RANGE_MM: tuple[float, float] = (89.37, 357.66)


def ellipse_circumference(a: float, b: float) -> float:
    """Perimeter of an ellipse with semi-axes `a`, `b` (any length unit; same unit back).

    Ramanujan's second approximation (Ramanujan 1914, "Modular equations and approximations
    to pi", Q. J. Math. 45:350-372): ``pi (a+b) (1 + 3h / (10 + sqrt(4 - 3h)))`` with
    ``h = ((a-b)/(a+b))^2``. Its relative error is below 5e-10 for b/a >= 0.5 (every HC18
    head), about 1e-6 at b/a = 0.2, 1e-5 at 0.1, and grows to 4e-4 for a flat ellipse (b -> 0).
    """
    a, b = abs(float(a)), abs(float(b))
    if a + b == 0.0:
        return 0.0
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1.0 + 3.0 * h / (10.0 + math.sqrt(4.0 - 3.0 * h)))


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in image coordinates (see the module docstring for the convention).

    Attributes: cx, cy centre; a >= b semi-axes (pixels, or mm after `to_mm`); angle_rad in
    [0, pi), direction of the `a` axis measured from +x towards +y (y points down).
    """

    cx: float
    cy: float
    a: float
    b: float
    angle_rad: float

    @property
    def circumference(self) -> float:
        """Perimeter in the ellipse's unit (pixels or mm), Ramanujan II."""
        return ellipse_circumference(self.a, self.b)

    def to_mm(self, pixel_size_mm: float) -> Ellipse:
        """The same ellipse with centre and semi-axes in mm (isotropic pixels, as in HC18);
        `pixel_size_mm` is checked by `fetalhead.inputs.validate_pixel_size`."""
        s = validate_pixel_size(pixel_size_mm)
        return replace(self, cx=self.cx * s, cy=self.cy * s, a=self.a * s, b=self.b * s)

    @classmethod
    def from_box(cls, box: tuple[tuple[float, float], tuple[float, float], float]) -> Ellipse:
        """The ellipse of an OpenCV rotated rectangle ((cx, cy), (width, height), angle in
        degrees), as cv2.fitEllipse returns it and cv2.ellipse draws it; pixels."""
        (cx, cy), (w, h), angle_deg = box
        return _normalise(cx, cy, w / 2.0, h / 2.0, math.radians(angle_deg))

    def to_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """Filled rasterisation, uint8 {0,1} of `shape` (H, W); the ellipse must be in pixels.

        Fills a fine polygon with cv2.fillPoly, the rule cv2.ellipse uses (pixels touched by
        the outline count), but keeps the exact angle: cv2.ellipse rounds it to whole degrees.
        """
        mask = np.zeros(shape, np.uint8)
        xy = ellipse_points(self, max(64, int(self.circumference)))  # vertices about 1 px apart
        shift = 8  # fillPoly takes integer coordinates; 8 fractional bits give 1/256 px
        pts = np.round(xy * (1 << shift)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, shift)
        return mask


def _normalise(cx: float, cy: float, a: float, b: float, angle_rad: float) -> Ellipse:
    """Make `a` the semi-major axis and wrap the angle into [0, pi)."""
    if a < b:
        a, b = b, a
        angle_rad += math.pi / 2
    angle_rad = math.fmod(angle_rad, math.pi)
    if angle_rad < 0:
        angle_rad += math.pi
    if angle_rad >= math.pi:  # -1e-15 + pi rounds to pi
        angle_rad = 0.0
    return Ellipse(float(cx), float(cy), float(a), float(b), float(angle_rad) + 0.0)  # no -0.0


def largest_component_boundary(mask: np.ndarray) -> np.ndarray | None:
    """Outer boundary pixels (N, 2) int32 (x, y) of the largest 8-connected component of a
    (H, W) mask (`fetalhead.inputs.binary_mask`: above 0 = head); None when it has none. The
    points `fit_ellipse` fits."""
    binary = np.asarray(mask)
    if binary.dtype != np.uint8 or not binary.flags.c_contiguous:  # OpenCV labels C-order uint8 only
        binary = np.ascontiguousarray(binary_mask(binary), dtype=np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    component = (labels == largest).astype(np.uint8)
    # RETR_EXTERNAL: for a thin outline (the original Zenodo annotations) this is the ring's
    # outer edge, for a filled mask the region's boundary; holes are ignored either way.
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    return max(contours, key=len).reshape(-1, 2)


def fit_ellipse(mask: np.ndarray) -> Ellipse | None:
    """Least-squares ellipse (pixels) through the boundary of the mask's largest component.

    Args:
        mask: (H, W) or (H, W, C) array; above 0 = head. bool, uint8 {0,1} or {0,255}, or
            float {0,1} (a map of probabilities is refused: threshold it first).

    The fit goes through the CENTRES of the boundary pixels: for a mask filled like
    cv2.ellipse / `Ellipse.to_mask` (outline pixels included) it recovers the drawn ellipse to
    about 0.1 px; for a mask of exactly the pixels whose centres lie inside an ellipse the
    semi-axes come out about 0.46 px short. Calibrate HC against reference values (see
    `estimate_bias`) rather than trusting either convention.

    Returns:
        The `Ellipse` in pixels, or None when there is no head: empty mask, fewer than
        `MIN_BOUNDARY_POINTS` boundary points, or a degenerate fit (semi-minor axis below
        `MIN_SEMI_AXIS_PX`, non-finite or huge). Never raises cv2.error.
    """
    arr = np.asarray(mask)
    if arr.ndim == 3:
        if arr.shape[2] in (2, 4):  # gray or colour + alpha: the alpha is no part of the mask
            arr = arr[:, :, :-1]
        arr = arr.max(axis=2)
    if arr.ndim != 2:
        raise FetalheadError(f"fit_ellipse expects an (H, W) mask, got shape {arr.shape}")
    binary = np.ascontiguousarray(binary_mask(arr, "fit_ellipse"), dtype=np.uint8)
    if not binary.any():  # also guards zero-size arrays, which crash OpenCV's labelling
        return None
    try:
        points = largest_component_boundary(binary)
    except cv2.error:
        return None
    return None if points is None else fit_ellipse_points(points, binary.shape)


def fit_ellipse_points(points: np.ndarray, shape: tuple[int, ...]) -> Ellipse | None:
    """Least-squares ellipse (pixels) through points (N, 2) as (x, y) of an image of `shape`
    (H, W): the fit `fit_ellipse` makes through a mask's boundary. None for fewer than
    `MIN_BOUNDARY_POINTS` points or a degenerate fit (semi-minor axis below `MIN_SEMI_AXIS_PX`,
    non-finite, or far larger than the image). Never raises cv2.error."""
    if len(points) < MIN_BOUNDARY_POINTS:
        return None
    try:
        (cx, cy), (w, h), angle_deg = cv2.fitEllipse(np.asarray(points, np.float32))
    except cv2.error:
        return None
    # cv2 returns FULL axes and the angle (degrees) of the `w` side, from +x towards +y.
    values = np.array([cx, cy, w, h, angle_deg], dtype=np.float64)
    limit = 10.0 * max(shape[:2])  # a fit far larger than the image is a degenerate conic
    if not np.all(np.isfinite(values)) or max(w, h) > 2 * limit:
        return None
    if min(w, h) < 2 * MIN_SEMI_AXIS_PX:
        return None
    return Ellipse.from_box(((cx, cy), (w, h), angle_deg))


def head_ellipse(fitted: Ellipse, bias_px: float = ANNOTATION_BIAS_PX) -> Ellipse:
    """The head outline as a sonographer draws it, from an ellipse (pixels) fitted to the
    boundary of a FILLED mask (an HC18 annotation, or a model trained on them): both
    semi-axes `bias_px` / (2 pi) smaller (0.93 px for `ANNOTATION_BIAS_PX`), since a parallel curve t px
    inside an ellipse is 2 pi t shorter. (The smaller ellipse is close to that parallel curve,
    not on it: its own perimeter exceeds the fitted one's minus `ANNOTATION_BIAS_PX` by up to
    0.3 px for b / a >= 0.4, more for a larger `bias_px`, so an HC recomputed from it can be up to 0.3 px x pixel size above
    the HC reported.) Predictions and references are put on this same footing before they are
    compared (`ellipse_dice`, `ellipse_hausdorff_px`). `bias_px`: the pixels of perimeter
    to remove, `ANNOTATION_BIAS_PX` for an annotation or a prediction at HC18's resolution."""
    t = float(bias_px) / (2.0 * math.pi)
    return replace(fitted, a=max(fitted.a - t, 0.0), b=max(fitted.b - t, 0.0))


def prediction_bias_px(ratio: float) -> float:
    """Pixels of perimeter to remove from an ellipse fitted to a PREDICTED mask, in the pixels of
    a frame whose pixels per network pixel are `ratio` times an HC18 frame's
    (`fetalhead.frame.network_scale`); `ANNOTATION_BIAS_PX` at ratio 1.

    The network learned the annotations' boundary at its own size, so that offset (the 0.93 px
    of `ANNOTATION_BIAS_PX` / 2 pi, plus the fit's shortfall it made up for) grows with `ratio`;
    the fit's own shortfall, `CENTRE_FIT_SHORTFALL_PX`, is in the frame's pixels whatever the
    ratio: 2 pi ((0.93 + 0.45) ratio - 0.45).
    """
    t = ANNOTATION_BIAS_PX / (2.0 * math.pi)
    return 2.0 * math.pi * ((t + CENTRE_FIT_SHORTFALL_PX) * float(ratio) - CENTRE_FIT_SHORTFALL_PX)


def ellipse_points(e: Ellipse, n: int) -> np.ndarray:
    """`n` points (n, 2) as (x, y) on the ellipse curve, evenly spaced in its parameter."""
    t = np.linspace(0.0, 2.0 * math.pi, int(n), endpoint=False)
    c, s = math.cos(e.angle_rad), math.sin(e.angle_rad)
    x = e.cx + e.a * np.cos(t) * c - e.b * np.sin(t) * s
    y = e.cy + e.a * np.cos(t) * s + e.b * np.sin(t) * c
    return np.stack([x, y], axis=1)


def distance_to_ellipse(points: np.ndarray, e: Ellipse, iterations: int = 64) -> np.ndarray:
    """Exact distance (n,) from each point (n, 2) as (x, y) to the CURVE of `e` (same unit).

    Eberly's robust method ("Distance from a point to an ellipse, an ellipsoid, or a
    hyperellipsoid", Geometric Tools): in the ellipse's own frame and first quadrant the closest
    curve point solves one monotone equation in one unknown, found by bisection to float
    precision for all points at once.
    """
    c, s = math.cos(e.angle_rad), math.sin(e.angle_rad)
    dx, dy = points[:, 0] - e.cx, points[:, 1] - e.cy
    u, v = np.abs(dx * c + dy * s), np.abs(dy * c - dx * s)  # along the a and the b axis
    if e.a < e.b:
        u, v = v, u
    e0 = max(e.a, e.b)
    e1 = max(min(e.a, e.b), 1e-9 * max(e0, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        # off the major axis: root of (r0 z0 / (t + r0))^2 + (z1 / (t + 1))^2 = 1
        z0, z1 = u / e0, v / e1
        g = z0**2 + z1**2 - 1.0
        r0 = (e0 / e1) ** 2
        n0 = r0 * z0
        lo, hi = z1 - 1.0, np.where(g < 0, 0.0, np.hypot(n0, z1) - 1.0)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            above = (n0 / (mid + r0)) ** 2 + (z1 / (mid + 1.0)) ** 2 > 1.0
            lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        t = 0.5 * (lo + hi)
        off_axis = np.where(g == 0, 0.0, np.hypot(r0 * u / (t + r0) - u, v / (t + 1.0) - v))
        # on the major axis (v = 0): near the centre the closest point lies off the axis
        num, den = e0 * u, e0**2 - e1**2
        inner = num < den
        q = np.where(inner, num / (den if den > 0 else 1.0), 1.0)
        on_axis = np.where(inner, np.hypot(e0 * q - u, e1 * np.sqrt(np.clip(1.0 - q**2, 0.0, None))),
                           np.abs(u - e0))
    # points within a rounding error of the axis count as on it (the distance moves by less)
    return np.where(v > 1e-9 * e0, off_axis, on_axis)


def ellipse_hausdorff_px(e1: Ellipse, e2: Ellipse) -> float:
    """Symmetric Hausdorff distance (pixels) between two ellipse CURVES (not masks).

    Each curve is sampled every 0.25 px or closer and measured exactly to the other curve
    (`distance_to_ellipse`): for head-like ellipses within 0.01 px of the true value (the
    distance along a curve is smooth at its maximum; tests check 0.002 px).
    """
    def points(e: Ellipse) -> np.ndarray:
        return ellipse_points(e, max(64, math.ceil(e.circumference / 0.25)))

    return float(max(distance_to_ellipse(points(e1), e2).max(), distance_to_ellipse(points(e2), e1).max()))


def ellipse_dice(e1: Ellipse, e2: Ellipse, shape: tuple[int, int]) -> float:
    """Dice of the two filled ellipses (pixels) rasterised on an image grid of `shape` (H, W):
    how the HC18 organisers score a submission, which holds only ellipse parameters."""
    m1, m2 = e1.to_mask(shape).astype(bool), e2.to_mask(shape).astype(bool)
    total = int(m1.sum()) + int(m2.sum())
    return 1.0 if total == 0 else 2.0 * int((m1 & m2).sum()) / total


def hc_from_mask(mask: np.ndarray, pixel_size_mm: float, bias_mm: float = 0.0) -> float:
    """Head circumference in mm of the ellipse fitted to `mask` (H, W), minus `bias_mm`.

    `mask` must be at the image's ORIGINAL resolution so that `pixel_size_mm` applies. For
    filled HC18 annotations (and models trained on them) pass
    ``bias_mm=annotation_bias_mm(pixel_size_mm)``. Returns nan when there is no head.
    """
    px = validate_pixel_size(pixel_size_mm)
    ellipse = fit_ellipse(mask)
    if ellipse is None:
        return float("nan")
    return ellipse.circumference * px - float(bias_mm)


def annotation_bias_mm(pixel_size_mm: float | np.ndarray) -> float | np.ndarray:
    """Bias (mm) of HC from a filled HC18 annotation for this pixel size (mm per pixel).

    ``ANNOTATION_BIAS_PX * pixel_size_mm``: the drawn line adds a constant number of pixels to
    the circumference (see the module docstring). Subtract it: ``hc_from_mask(m, px, bias)``.
    """
    return ANNOTATION_BIAS_PX * pixel_size_mm


def challenge_row(filename: str, ellipse: Ellipse | None, pixel_size_mm: float) -> dict:
    """One HC18 submission row (keys `SUBMISSION_COLUMNS`) for an ellipse fitted in pixels.

    Convention: centre (x = column, y = row) measured from the centre of the top-left pixel,
    `semi_axes_a_mm` is the semi-major axis, along `angle_rad` (radians in [0, pi), from +x
    towards +y), `semi_axes_b_mm` the semi-minor. The challenge ranks on HC, which depends on a
    and b only and symmetrically, so the score does not depend on this choice. A missing
    ellipse (no head) gives NaN values.
    """
    if ellipse is None:
        nan = float("nan")
        return {"filename": filename, **{c: nan for c in SUBMISSION_COLUMNS[1:]}}
    e = ellipse.to_mm(pixel_size_mm)
    return {
        "filename": filename,
        "center_x_mm": e.cx,
        "center_y_mm": e.cy,
        "semi_axes_a_mm": e.a,
        "semi_axes_b_mm": e.b,
        "angle_rad": e.angle_rad,
    }


def gestational_age_weeks(hc_mm: float) -> tuple[float, bool]:
    """Gestational age (weeks) from HC (mm) by Hadlock et al. 1984, and whether HC is in range.

    ``GA = 8.96 + 0.540 HC + 0.0003 HC^3`` with HC in cm (Hadlock, Deter, Harrist, Park,
    "Estimating fetal age: computer-assisted analysis of multiple fetal growth parameters",
    Radiology 1984; 152:497-501). The formula was fitted on fetuses of about 14-42 weeks, i.e.
    HC in `HADLOCK_HC_RANGE_MM` (89.4-357.7 mm); outside it (e.g. first-trimester HC18 images)
    `in_range` is False and the age is an extrapolation. nan HC gives (nan, False).
    """
    hc = float(hc_mm)
    if not math.isfinite(hc):
        return float("nan"), False
    cm = hc / 10.0
    weeks = 8.96 + 0.540 * cm + 0.0003 * cm**3
    lo, hi = HADLOCK_HC_RANGE_MM
    return weeks, bool(lo <= hc <= hi)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """Minimiser of sum(w |v - k|) over k (lower weighted median)."""
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    return float(v[np.searchsorted(cum, 0.5 * cum[-1])])


def estimate_bias(
    measured_hc_mm: np.ndarray,
    reference_hc_mm: np.ndarray,
    pixel_size_mm: np.ndarray | None = None,
    model: str = "per_pixel",
) -> float:
    """Constant that minimises the mean absolute error of ``measured - bias`` vs reference.

    Args:
        measured_hc_mm: (N,) HC from masks (e.g. `reference_mask_hcs`), mm; nan rows ignored.
        reference_hc_mm: (N,) HC from the CSV, mm.
        pixel_size_mm: (N,) mm per pixel; required for model="per_pixel".
        model: "per_pixel" -> bias in PIXELS of circumference (use ``k * pixel_size_mm``),
            the weighted median of d/px with weights px; "additive" -> bias in mm, median of d.
    Estimate it on the training split only.
    """
    d = np.asarray(measured_hc_mm, np.float64) - np.asarray(reference_hc_mm, np.float64)
    ok = np.isfinite(d)
    if model == "additive":
        if not ok.any():
            raise FetalheadError("estimate_bias: no finite HC pairs")
        return float(np.median(d[ok]))
    if model != "per_pixel":
        raise FetalheadError(f"estimate_bias: unknown model {model!r} (per_pixel or additive)")
    if pixel_size_mm is None:
        raise FetalheadError("estimate_bias: model='per_pixel' needs pixel_size_mm")
    px = np.broadcast_to(np.asarray(pixel_size_mm, np.float64), d.shape)
    ok &= np.isfinite(px) & (px > 0)
    if not ok.any():
        raise FetalheadError("estimate_bias: no finite HC pairs")
    return _weighted_median(d[ok] / px[ok], px[ok])


def reference_mask_hcs(
    part: str = "train",
    root: str | os.PathLike | None = None,
    filenames: Iterable[str] | None = None,
) -> pd.DataFrame:
    """HC (mm, no bias correction) of the ground-truth masks of one split part.

    Reads every annotation of `part` ("train", "val" or "test"; only those in `filenames` when
    given) at original resolution from the HC18 folder `root` (default: `paths.data_dir()`).
    Returns a DataFrame[filename, pixel_size_mm, hc_mm (CSV), hc_mask_mm], nan where no head.
    """
    # Imported here: the data modules are heavier and not needed for fitting.
    from fetalhead.data import annotation_path, load_mask, read_training_csv
    from fetalhead.split import load_split

    split = load_split(root=root)
    names = set(split.loc[split["split"] == part, "filename"])
    if filenames is not None:
        names &= set(filenames)
    df = read_training_csv(root)
    df = df[df["filename"].isin(names)].reset_index(drop=True)
    hcs = [
        hc_from_mask(load_mask(annotation_path(name, root)), px)
        for name, px in zip(df["filename"], df["pixel_size_mm"], strict=True)
    ]
    out = df[["filename", "pixel_size_mm", "hc_mm"]].copy()
    out["hc_mask_mm"] = np.asarray(hcs, dtype=np.float64)
    return out
