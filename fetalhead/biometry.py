"""Head diameters from the head ellipse: biparietal (BPD) and occipitofrontal (OFD) diameter in
mm, and the cephalic index that says whether the head's shape makes BPD misleading.

Sonographers measure BPD and OFD on the same transthalamic plane as HC. On the fitted head
ellipse (the outline as the sonographer draws it, `fetalhead.ellipse.head_ellipse`) they are
its axes: OFD the long axis (2a) and BPD the short one (2b), both from outline to outline, so
they are outer-to-outer diameters. Clinical BPD charts often place the calipers outer-to-inner
(one skull wall less), so ages from a BPD chart are not offered here: HC is the measurement
this package dates a pregnancy by.

The cephalic index is BPD / OFD x 100 (Hadlock, Deter, Carpenter and Park, "Estimating fetal
age: effect of head shape on BPD", AJR 1981; 137:83-85: mean 78.3 in 316 examinations at
14-40 weeks). More than one standard deviation from that mean (below 74: a long, narrow head,
"dolichocephalic"; above 83: a short, wide one, "brachycephalic") may make BPD misjudge the
age, while HC stays a valid alternative: the reason HC is the measure of choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fetalhead.ellipse import Ellipse

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["CEPHALIC_INDEX_RANGE", "HEAD_SHAPES", "Diameters", "diameter_errors", "diameters", "head_shape",
           "shape_agreement"]

#: Hadlock et al. 1981: within one SD of the mean cephalic index 78.3 (BPD / OFD x 100).
CEPHALIC_INDEX_RANGE: tuple[float, float] = (74.0, 83.0)
#: `head_shape` labels: below, within and above `CEPHALIC_INDEX_RANGE`; "" when no head.
HEAD_SHAPES: tuple[str, ...] = ("dolichocephalic", "normal", "brachycephalic")


@dataclass(frozen=True)
class Diameters:
    """BPD and OFD (mm, outer to outer) of a head ellipse and its cephalic index (BPD / OFD x 100,
    no unit); NaNs when no head was found."""

    bpd_mm: float
    ofd_mm: float

    @property
    def cephalic_index(self) -> float:
        """BPD / OFD x 100 (no unit); nan when no head (or a degenerate ellipse)."""
        if not (self.ofd_mm > 0 and math.isfinite(self.bpd_mm)):
            return float("nan")
        return 100.0 * self.bpd_mm / self.ofd_mm

    @property
    def head_shape(self) -> str:
        """`head_shape` of the cephalic index: one of `HEAD_SHAPES`, or "" when no head."""
        return head_shape(self.cephalic_index)

    def to_row(self) -> dict[str, float | str]:
        """CSV columns bpd_mm, ofd_mm, cephalic_index, head_shape."""
        return {"bpd_mm": self.bpd_mm, "ofd_mm": self.ofd_mm, "cephalic_index": self.cephalic_index,
                "head_shape": self.head_shape}


def diameters(head_mm: Ellipse | None) -> Diameters:
    """Diameters of a head ellipse in mm (`Prediction.ellipse_mm`; semi-axes a >= b): OFD = 2a,
    BPD = 2b. None (no head) gives NaNs."""
    if head_mm is None:
        return Diameters(float("nan"), float("nan"))
    return Diameters(bpd_mm=2.0 * min(head_mm.a, head_mm.b), ofd_mm=2.0 * max(head_mm.a, head_mm.b))


def head_shape(cephalic_index: float) -> str:
    """"dolichocephalic" below 74, "brachycephalic" above 83, "normal" between (Hadlock et al.
    1981, `CEPHALIC_INDEX_RANGE`, ends included in "normal"); "" for nan (no head)."""
    if not math.isfinite(cephalic_index):
        return ""
    low, high = CEPHALIC_INDEX_RANGE
    if cephalic_index < low:
        return HEAD_SHAPES[0]
    return HEAD_SHAPES[2] if cephalic_index > high else HEAD_SHAPES[1]


def diameter_errors(pred: Diameters, ref: Diameters) -> dict[str, float]:
    """Signed (pred - ref) and absolute differences of BPD and OFD (mm) and of the cephalic
    index (points), with the reference values: per-image columns of `fetalhead.evaluate`.
    NaN differences when no head was predicted."""
    d_bpd, d_ofd = pred.bpd_mm - ref.bpd_mm, pred.ofd_mm - ref.ofd_mm
    d_ci = pred.cephalic_index - ref.cephalic_index
    return {"bpd_true_mm": ref.bpd_mm, "bpd_error_mm": d_bpd, "bpd_abs_error_mm": abs(d_bpd),
            "ofd_true_mm": ref.ofd_mm, "ofd_error_mm": d_ofd, "ofd_abs_error_mm": abs(d_ofd),
            "cephalic_index_true": ref.cephalic_index, "cephalic_index_error": d_ci,
            "cephalic_index_abs_error": abs(d_ci)}


def shape_agreement(df: pd.DataFrame) -> pd.DataFrame:
    """Counts of images by the annotation's head shape (rows) and the prediction's (columns),
    `HEAD_SHAPES` in order, from an evaluation table (columns cephalic_index_true and
    cephalic_index_error); images where no head was found are left out."""
    import pandas as pd

    ref = df["cephalic_index_true"].astype(float)
    pred = ref + df["cephalic_index_error"].astype(float)
    found = pred.notna()
    rows = pd.Categorical([head_shape(v) for v in ref[found]], categories=HEAD_SHAPES)
    cols = pd.Categorical([head_shape(v) for v in pred[found]], categories=HEAD_SHAPES)
    table = pd.crosstab(rows, cols, dropna=False).reindex(index=list(HEAD_SHAPES), columns=list(HEAD_SHAPES),
                                                          fill_value=0)
    table.index.name, table.columns.name = "annotation", "prediction"
    return table
