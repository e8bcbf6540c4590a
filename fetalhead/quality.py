"""How far to trust one measurement: signals from the model and the geometry, one score, a flag.

The raw signals of a prediction with a head:

- `ellipse_iou`: IoU of the mask with its own filled fitted ellipse (a head is an ellipse; a
  ragged or bitten mask is not);
- `one_component`: the largest component's share of all thresholded pixels (two blobs: low);
- `border_contact`: the length of the mask's contact with the image border / the ellipse's
  perimeter (a head cut by the border gives a guessed HC);
- `band_px`: the mean width of the band of undecided pixels (probability between 0.25 and
  0.75) along the outline, in the NETWORK's pixels (its area / perimeter, divided by the
  image-to-network scale): a blurred, hesitant outline is wide;
- `hc_band_mm`: the same band in millimetres of HC: 2 pi x its width in mm, the range of
  circumferences whose outline lies inside it. A band one network pixel wide spans more mm
  on a coarse image (large pixel size: the late-gestation heads), where a small misplacement
  of the outline already changes HC by several mm;
- `flip_agreement`: Dice of the masks of the plain and the mirrored pass (only with
  test-time flips; NaN otherwise and left out);
- `hc_mm`: an HC outside `HC_PLAUSIBLE_MM` cannot be a fetal head.

Each is mapped to [0, 1] by `SCALES` (1 at or beyond the "good" end, 0 at or beyond the "bad"
end, linear between) and the score is the smallest: one bad sign is enough to doubt. The ends
were read off the validation part's distributions (never the test part); a prediction whose
score is below the predictor's `review_below` is flagged for review. Each shipped model's
threshold flags at most `MAX_FLAGGED` of its own predictions on HC18's unlabelled challenge
images (`review_threshold`; `benchmarks/review_calibration.py`): no label is read, and a
stronger network, surer of itself, gets a higher threshold than a weaker one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from fetalhead.ellipse import Ellipse

__all__ = ["HC_PLAUSIBLE_MM", "MAX_FLAGGED", "ROW_COLUMNS", "SCALES", "SIGNALS", "Quality", "mask_dice",
           "quality", "review_threshold", "score_signals"]

#: head circumferences (mm) a fetal head at 10-42 weeks can have, with margin (HC18: 44-346 mm)
HC_PLAUSIBLE_MM: tuple[float, float] = (35.0, 400.0)
#: signal -> (value scored 0, value scored 1); chosen on the validation part, where the median
#: image has ellipse_iou 0.982, band_px 2.3, flip_agreement 0.99 and no border contact.
#: hc_band_mm scores 0.5 at 6 mm, the size of a gross HC error (`GROSS_ERROR_MM` of
#: `fetalhead.evaluate`): flagged when the band spans more than that
SCALES: dict[str, tuple[float, float]] = {
    "ellipse_iou": (0.90, 0.97),
    "one_component": (0.90, 0.99),
    "border_contact": (0.20, 0.02),
    "band_px": (6.0, 3.0),
    "hc_band_mm": (7.0, 5.0),
    "flip_agreement": (0.90, 0.98),
}
#: the raw signals, in the order of `Quality`'s fields
SIGNALS = ("ellipse_iou", "one_component", "border_contact", "band_px", "hc_band_mm", "flip_agreement",
           "hc_mm")
#: the columns `Quality.to_row` gives a table: the score, then each signal but HC (which tables
#: hold in a column of their own)
ROW_COLUMNS = ("quality", *(f"q_{s}" for s in SIGNALS if s != "hc_mm"))
#: the share of images a review flag may set aside
MAX_FLAGGED = 0.10


def _scaled(value: float, bad: float, good: float) -> float:
    return float(np.clip((value - bad) / (good - bad), 0.0, 1.0))


def score_signals(ellipse_iou: float, one_component: float, border_contact: float, band_px: float,
                  hc_band_mm: float, flip_agreement: float, hc_mm: float) -> float:
    """The quality score in [0, 1] of raw signals: the smallest of their `SCALES` values, 0 for
    an implausible HC; a NaN signal (flip_agreement when not computed) is left out, and with
    every signal NaN nothing vouches for the measurement: 0."""
    if not HC_PLAUSIBLE_MM[0] <= hc_mm <= HC_PLAUSIBLE_MM[1]:
        return 0.0
    raw = dict(ellipse_iou=ellipse_iou, one_component=one_component, border_contact=border_contact,
               band_px=band_px, hc_band_mm=hc_band_mm, flip_agreement=flip_agreement)
    return min((_scaled(v, *SCALES[k]) for k, v in raw.items() if not math.isnan(v)), default=0.0)


@dataclass(frozen=True)
class Quality:
    """The raw signals (see the module docstring; flip_agreement NaN when not computed) and the score."""

    ellipse_iou: float
    one_component: float
    border_contact: float
    band_px: float
    hc_band_mm: float
    flip_agreement: float
    hc_mm: float
    score: float

    def to_row(self) -> dict[str, float]:
        """{"quality": score, "q_<signal>": value, ...}: the `ROW_COLUMNS` of a CSV row."""
        d = asdict(self)
        return {"quality": d["score"], **{c: d[c[2:]] for c in ROW_COLUMNS[1:]}}


def review_threshold(scores: npt.ArrayLike, max_flagged: float = MAX_FLAGGED) -> float:
    """The largest threshold (2 decimals) below which at most `max_flagged` of the quality
    `scores` (N,) lie; a NaN score (no head found) counts as 0."""
    s = np.sort(np.nan_to_num(np.asarray(scores, float), nan=0.0))
    k = int(np.floor(max_flagged * len(s)))
    if k >= len(s):
        return 1.0
    t = math.floor(round(s[k] * 100, 9)) / 100  # 0.29 * 100 is 28.999...: still 0.29
    return float(t if t <= s[k] else t - 0.01)


def mask_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean (H, W) masks; 1 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def quality(prob: np.ndarray, mask: np.ndarray, foreground: np.ndarray, ellipse: Ellipse,
            hc_mm: float, pixel_size_mm: float, flip_agreement: float = math.nan,
            scale: float = 1.0) -> Quality:
    """The quality of one prediction with a head.

    prob: float (H, W) probabilities at the image's size; mask: the largest component (H, W);
    foreground: every pixel above the threshold (H, W); ellipse: fitted to `mask` (pixels);
    hc_mm: the measured HC (mm); pixel_size_mm: mm per image pixel; flip_agreement: Dice of
    the plain and mirrored passes' masks, or NaN; scale: image pixels per network pixel
    (e.g. 800 / 480).
    """
    m = np.asarray(mask, bool)
    filled = ellipse.to_mask(m.shape).astype(bool)
    union = int((m | filled).sum())
    ellipse_iou = int((m & filled).sum()) / union if union else 0.0
    fg = int(np.count_nonzero(foreground))
    one_component = int(m.sum()) / fg if fg else 0.0
    perimeter = max(ellipse.circumference, 1.0)
    edge = int(m[0].sum()) + int(m[-1].sum()) + int(m[1:-1, 0].sum()) + int(m[1:-1, -1].sum())
    border_contact = edge / perimeter
    band_image_px = int(np.count_nonzero((prob > 0.25) & (prob < 0.75))) / perimeter
    band_px = band_image_px / max(float(scale), 1e-6)
    hc_band_mm = 2.0 * math.pi * band_image_px * float(pixel_size_mm)
    values = (ellipse_iou, one_component, border_contact, band_px, hc_band_mm, float(flip_agreement),
              float(hc_mm))
    return Quality(*(float(v) for v in values), score=score_signals(*values))
