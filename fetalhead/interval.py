"""How precise one head circumference is: a 90 % interval whose width grows with the pixel size.

A pixel of misplaced outline costs more millimetres of HC on a coarse image (large pixel size:
mostly late-gestation heads, imaged zoomed out), so one fixed "+- x mm" is too wide for small
heads and too narrow for large ones. The interval of an HC measured at pixel size p (mm) is

    HC +- FACTOR x (p + OFFSET_MM)   (mm),

calibrated by split conformal prediction (Vovk, Gammerman & Shafer 2005; Lei et al. 2018,
JASA 113: 1094-1111): FACTOR is the ceil((n + 1) x COVERAGE)-th smallest of
|HC error| / (p + OFFSET_MM) over n measurements the model did not train on, so that a new
measurement from the same kind of images and model lies inside with probability at least
COVERAGE. The n are the 693 out-of-fold predictions of the train part (each image measured
by a model of the `small` recipe that never saw its examination: `benchmarks/out_of_fold.py`);
OFFSET_MM was chosen on them so that the coverage is even across thirds of pixel size
(`benchmarks/hc_interval.py`, `results/review/hc_interval_small.json`, which also measures the
shipped models' coverage on the held-out test part). It depends on the pixel size only, an
input, not on a model's confidence, so it carries over between models of one recipe; a
measurement flagged for review is less certain than its interval says.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from fetalhead.errors import FetalheadError

if TYPE_CHECKING:  # tables come in as DataFrames; a measurement's interval needs no pandas
    import pandas as pd

__all__ = ["COVERAGE", "FACTOR", "OFFSET_MM", "conformal_factor", "half_width_mm", "inside", "interval_summary"]

#: the share of measurements an interval should hold
COVERAGE = 0.90
#: added to the pixel size (mm per pixel): part of the error does not grow with it; of
#: `benchmarks/hc_interval.py`'s candidates, the one whose out-of-fold coverage strays least from
#: COVERAGE in any third of pixel size
OFFSET_MM = 0.025
#: calibrated on the out-of-fold predictions (results/review/hc_interval_small.json, "factor",
#: to 3 decimals; tests/test_interval.py checks it): half-width in mm per mm of (p + OFFSET_MM)
FACTOR = 25.708


def conformal_factor(abs_errors_mm: npt.ArrayLike, pixel_sizes_mm: npt.ArrayLike,
                     coverage: float = COVERAGE, offset_mm: float = OFFSET_MM) -> float:
    """The split-conformal FACTOR of (N,) absolute HC errors (mm) at (N,) pixel sizes (mm per
    pixel): the ceil((N + 1) x coverage)-th smallest |error| / (pixel size + offset_mm). A
    missing measurement (NaN error: no head found) counts as infinitely wrong."""
    e = np.asarray(abs_errors_mm, float).ravel()
    p = np.asarray(pixel_sizes_mm, float).ravel()
    if e.shape != p.shape or e.size == 0:
        raise FetalheadError(f"conformal_factor: {e.size} errors for {p.size} pixel sizes")
    if not 0 < coverage < 1:
        raise FetalheadError(f"coverage must lie in (0, 1), got {coverage}")
    k = math.ceil((e.size + 1) * coverage)
    if k > e.size:
        least = max(1, math.floor(coverage / (1 - coverage)) - 1)  # about it; then exactly:
        while math.ceil((least + 1) * coverage) > least:
            least += 1
        raise FetalheadError(f"{e.size} measurements are too few for a {100 * coverage:g} % interval "
                             f"(at least {least} needed)")
    ratios = np.where(np.isfinite(e), np.abs(e), np.inf) / (p + offset_mm)
    return float(np.sort(ratios)[k - 1])


def half_width_mm(pixel_size_mm: npt.ArrayLike, factor: float = FACTOR,
                  offset_mm: float = OFFSET_MM) -> np.ndarray | float:
    """Half-width (mm of HC) of the interval at `pixel_size_mm` (mm per pixel, scalar or array)."""
    w = factor * (np.asarray(pixel_size_mm, float) + offset_mm)
    return float(w) if w.ndim == 0 else w


def inside(df: pd.DataFrame, factor: float = FACTOR, offset_mm: float = OFFSET_MM) -> np.ndarray:
    """Per row of a per-image table (columns pixel_size_mm, hc_abs_error_mm), whether the
    reference HC lies inside the measured HC's interval (N,) bool; no head found: False."""
    err = df["hc_abs_error_mm"].to_numpy(float)
    with np.errstate(invalid="ignore"):  # NaN <= x is False: no head, not inside
        return err <= half_width_mm(df["pixel_size_mm"].to_numpy(float), factor, offset_mm)


def interval_summary(df: pd.DataFrame, factor: float = FACTOR, offset_mm: float = OFFSET_MM,
                     n_boot: int = 2000, seed: int = 0) -> dict:
    """How often a per-image table's reference HC lies inside its interval (`inside`): n, the
    number inside, the coverage with its exam-bootstrap 95 % interval (column exam, when
    present), the coverage in each third of pixel size (fine, middle, coarse), the median
    half-width (mm) and, with a column status, the number and the number inside per status
    ("ok", "review", ...)."""
    from fetalhead.evaluate import bootstrap_ci

    ok = inside(df, factor, offset_mm).astype(float)
    lo, hi = bootstrap_ci(ok, n=n_boot, seed=seed, groups=df["exam"] if "exam" in df else None)
    sizes = df["pixel_size_mm"].to_numpy(float)
    thirds = np.array_split(np.argsort(sizes, kind="stable"), 3)
    return {
        "n": int(len(df)),
        "n_inside": int(ok.sum()),
        "coverage": float(ok.mean()) if len(ok) else float("nan"),
        "coverage_ci": (lo, hi),
        "coverage_by_third": [float(ok[t].mean()) if len(t) else float("nan") for t in thirds],
        "median_half_width_mm": float(np.median(half_width_mm(sizes, factor, offset_mm))) if len(sizes) else float("nan"),
        **({"by_status": {str(k): {"n": int(len(g)), "n_inside": int(ok[g.index].sum())}
                          for k, g in df.reset_index(drop=True).groupby("status", sort=False)}}
           if "status" in df else {}),
    }
