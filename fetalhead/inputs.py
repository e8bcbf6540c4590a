"""What the library takes in, checked in one place: image arrays, masks, pixel sizes and
probability thresholds. Each check returns the value it accepts or raises a one-line
`FetalheadError` that says what was expected; none of them imports more than NumPy.
"""

from __future__ import annotations

import math

import numpy as np

from fetalhead.errors import FetalheadError

__all__ = [
    "MAX_SIDE",
    "MIN_SIDE",
    "PIXEL_SIZE_RANGE_MM",
    "binary_mask",
    "validate_image",
    "validate_pixel_size",
    "validate_threshold",
]

MIN_SIDE = 32  #: smallest accepted image side, pixels
MAX_SIDE = 8192  #: largest accepted image side, pixels
#: Plausible ultrasound pixel sizes, mm per pixel (HC18 spans 0.05 to 0.39).
PIXEL_SIZE_RANGE_MM: tuple[float, float] = (0.01, 1.0)


def validate_pixel_size(value: object) -> float:
    """`value` as a float pixel size (mm per pixel) or a one-line FetalheadError: it must be a
    finite number > 0 within `PIXEL_SIZE_RANGE_MM`."""
    try:
        px = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FetalheadError(f"pixel size {value!r} is not a number") from None
    if not math.isfinite(px):
        raise FetalheadError(f"pixel size {value!r} is not a finite number")
    if px <= 0:
        raise FetalheadError(f"pixel size {px:g} mm must be positive")
    lo, hi = PIXEL_SIZE_RANGE_MM
    if not lo <= px <= hi:
        raise FetalheadError(f"pixel size {px:g} mm is implausible for ultrasound "
                             f"(expected {lo:g} to {hi:g} mm per pixel)")
    return px


def validate_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Check an image array: uint8, (H, W), each side in [MIN_SIDE, MAX_SIDE] pixels.
    `fetalhead.data.as_gray_uint8` turns other arrays into one, `load_image` reads a file."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 2:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise FetalheadError(f"{name}: expected a uint8 (H, W) grayscale array, got {desc} "
                             "(fetalhead.data.as_gray_uint8 converts one)")
    h, w = image.shape
    if min(h, w) < MIN_SIDE:
        raise FetalheadError(f"{name}: {h}x{w} pixels is too small (each side needs >= {MIN_SIDE})")
    if max(h, w) > MAX_SIDE:
        raise FetalheadError(f"{name}: {h}x{w} pixels is too large (each side must be <= {MAX_SIDE})")
    return image


def binary_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """A mask as bool, of the same shape: above 0 is head for bool and integer masks ({0,1},
    {0,255}); a float mask must hold two values at most, 0 and one above it ({0, 1} or
    {0, 255}), since one with more is a map of probabilities (threshold it first:
    ``prob > 0.5``) and above 0 would count all of it."""
    arr = np.asarray(mask)
    if arr.dtype.kind == "f" and arr.size:
        if not np.isfinite(arr).all():
            raise FetalheadError(f"{name}: a float mask with non-finite values: threshold a probability map "
                                 "first (prob > 0.5)")
        values = np.unique(arr)
        if len(values) > 2 or values[0] < 0 or (len(values) == 2 and values[0] != 0):
            raise FetalheadError(f"{name}: a float mask must hold 0 and one value above it, got {len(values)} "
                                 f"values from {float(values[0]):g} to {float(values[-1]):g}: threshold a "
                                 "probability map first (prob > 0.5)")
    elif arr.dtype.kind not in "biu":
        raise FetalheadError(f"{name}: expected a bool, integer or 0/1 float mask, got {arr.dtype}")
    return arr > 0


def validate_threshold(value: object) -> float:
    """A probability threshold as float, strictly between 0 and 1 (a head pixel is one whose
    probability exceeds it)."""
    try:
        t = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FetalheadError(f"threshold {value!r} is not a number") from None
    if not 0 < t < 1:
        raise FetalheadError(f"threshold {value!r} must lie strictly between 0 and 1 (a probability)")
    return t
