"""How far to trust one measurement: signals from the model and the geometry, one score, a flag.

Each signal is in [0, 1], 1 meaning "looks like a clean, single, whole head":

- `ellipse_fit`: IoU of the mask with its own filled fitted ellipse (a head is an ellipse; a
  ragged or bitten mask is not);
- `one_component`: the largest component's share of all thresholded pixels (two blobs: low);
- `inside`: 1 - the length of the mask's contact with the image border / the ellipse's
  perimeter (a head cut by the border gives a guessed HC);
- `sharpness`: how thin the band of undecided pixels (probability between 0.25 and 0.75) is
  along the outline: its area / perimeter is the band's mean width in pixels, `BAND_OK_PX` or
  less scores 1, `BAND_BAD_PX` or more scores 0;
- `flip_agreement`: Dice of the masks of the plain and the mirrored pass (only when both are
  computed, i.e. with test-time flips; NaN otherwise and left out);
- `plausible`: 1 when HC lies in `HC_PLAUSIBLE_MM`, else 0.

`score` is the smallest of them: one bad sign is enough to doubt. A prediction whose score is
below the threshold is flagged for review.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from fetalhead.ellipse import Ellipse

__all__ = [
    "BAND_BAD_PX",
    "BAND_OK_PX",
    "HC_PLAUSIBLE_MM",
    "SIGNALS",
    "Quality",
    "mask_dice",
    "quality",
]

#: head circumferences (mm) a fetal head at 10-42 weeks can have, with margin (HC18: 44-346 mm)
HC_PLAUSIBLE_MM: tuple[float, float] = (35.0, 400.0)
#: mean width (pixels at the image's size) of the undecided band: sharp at or below OK, bad at BAD
BAND_OK_PX, BAND_BAD_PX = 2.0, 12.0
#: the signals, in the order of `Quality`'s fields
SIGNALS = ("ellipse_fit", "one_component", "inside", "sharpness", "flip_agreement", "plausible")


@dataclass(frozen=True)
class Quality:
    """The signals (each in [0, 1]; flip_agreement NaN when not computed) and their minimum."""

    ellipse_fit: float
    one_component: float
    inside: float
    sharpness: float
    flip_agreement: float
    plausible: float
    score: float

    def to_row(self) -> dict[str, float]:
        """{"quality": score, "q_<signal>": value, ...} for a CSV row."""
        d = asdict(self)
        return {"quality": d.pop("score"), **{f"q_{k}": v for k, v in d.items()}}


def mask_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean (H, W) masks; 1 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def quality(prob: np.ndarray, mask: np.ndarray, foreground: np.ndarray, ellipse: Ellipse,
            hc_mm: float, flip_agreement: float = math.nan) -> Quality:
    """The quality of one prediction with a head.

    prob: float (H, W) probabilities at the image's size; mask: the largest component (H, W);
    foreground: every pixel above the threshold (H, W); ellipse: fitted to `mask` (pixels);
    hc_mm: the measured HC; flip_agreement: Dice of the plain and mirrored passes' masks, or NaN.
    """
    shape = mask.shape
    m = np.asarray(mask, bool)
    filled = ellipse.to_mask(shape).astype(bool)
    union = int((m | filled).sum())
    ellipse_fit = int((m & filled).sum()) / union if union else 0.0
    fg = int(np.count_nonzero(foreground))
    one_component = int(m.sum()) / fg if fg else 0.0
    perimeter = max(ellipse.circumference, 1.0)
    edge = int(m[0].sum()) + int(m[-1].sum()) + int(m[1:-1, 0].sum()) + int(m[1:-1, -1].sum())
    inside = max(1.0 - edge / perimeter, 0.0)
    band = int(np.count_nonzero((prob > 0.25) & (prob < 0.75))) / perimeter
    sharpness = float(np.clip((BAND_BAD_PX - band) / (BAND_BAD_PX - BAND_OK_PX), 0.0, 1.0))
    plausible = 1.0 if HC_PLAUSIBLE_MM[0] <= hc_mm <= HC_PLAUSIBLE_MM[1] else 0.0
    values = [ellipse_fit, one_component, inside, sharpness, flip_agreement, plausible]
    score = min(v for v in values if not math.isnan(v))
    return Quality(*(float(v) for v in values), score=float(score))
