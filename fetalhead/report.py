"""Evaluation figures and prediction overlays.

Plot functions take an optional `ax`, return the Figure (matplotlib's object API, no pyplot
state) and never call plt.show(); `fetalhead.viz.save_figure` writes them under stable names.
Colours come from the palette in `fetalhead.viz`. `draw_overlay` makes the RGB image the
`predict` command saves next to each mask.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

from fetalhead.predict import Prediction, Predictor
from fetalhead.viz import (
    ELLIPSE_COLOR,
    NO_HEAD_COLOR,
    new_axes,
    plot_overlay,
    rgb255,
)

__all__ = [
    "bland_altman",
    "centile_agreement",
    "diameter_plot",
    "dice_histogram",
    "interval_plot",
    "risk_coverage_plot",
    "review_scatter",
    "draw_overlay",
    "growth_chart",
    "limits_of_agreement",
    "pick_examples",
    "plot_prediction",
    "prediction_examples",
    "PNG_LEVEL",
    "save_png",
]

#: zlib level of the masks and overlays `fetalhead predict` writes: 1 (fast) rather than Pillow's
#: 6; lossless either way, the files somewhat larger (benchmarks/predict_outputs.py measures both)
PNG_LEVEL = 1


def save_png(pixels: np.ndarray, path: str | os.PathLike, level: int = PNG_LEVEL) -> None:
    """Write `pixels` (uint8 (H, W) gray or (H, W, 3) RGB) losslessly as the PNG file `path`,
    compressed at zlib `level` (0 to 9)."""
    from PIL import Image

    Image.fromarray(pixels).save(path, format="PNG", compress_level=level)


def draw_overlay(image: np.ndarray, pred: Prediction) -> np.ndarray:
    """RGB uint8 (H, W, 3): the grayscale image (H, W) with the predicted head ellipse (the
    bias-corrected outline), caliper crosses at the ends of its axes (OFD and BPD), its HC with
    the half-width of its 90 % interval (mm, `fetalhead.interval`) and, below, BPD and OFD (mm)
    in the palette's ellipse colour; or "no head found"."""
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    h, w = image.shape
    scale = max(min(h, w) / 540.0, 0.35)  # line and text size relative to an HC18 image
    thick = max(2, round(2 * scale))
    e = pred.head_ellipse
    lines, color = [pred.status], rgb255(NO_HEAD_COLOR)
    if e is not None:
        color = rgb255(ELLIPSE_COLOR)
        f = 1 << 4  # cv2.ellipse takes integers: 4 fractional bits give 1/16-pixel placement
        cv2.ellipse(rgb, (round(e.cx * f), round(e.cy * f)), (round(e.a * f), round(e.b * f)),
                    math.degrees(e.angle_rad), 0, 360, color, thick, cv2.LINE_AA, 4)
        c, s = math.cos(e.angle_rad), math.sin(e.angle_rad)
        for r, (ux, uy) in ((e.a, (c, s)), (e.b, (-s, c))):  # the long (OFD) and short (BPD) axis
            for sign in (1, -1):
                end = (round(e.cx + sign * r * ux), round(e.cy + sign * r * uy))
                cv2.drawMarker(rgb, end, color, cv2.MARKER_CROSS, max(9, round(18 * scale)), max(1, thick // 2),
                               cv2.LINE_AA)
        low, high = pred.hc_interval_mm
        d = pred.diameters
        lines = [f"HC {pred.hc_mm:.1f} mm +- {(high - low) / 2:.1f}", f"BPD {d.bpd_mm:.1f}  OFD {d.ofd_mm:.1f} mm"]
    for i, text in enumerate(lines):
        cv2.putText(rgb, text, (max(2, round(8 * scale)), max(12, round(28 * scale)) + i * max(12, round(30 * scale))),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, color, thick, cv2.LINE_AA)
    return rgb


def plot_prediction(image: np.ndarray, pred: Prediction, gt_mask: np.ndarray | None = None,
                    ax: Axes | None = None, title: str | None = None, legend: bool = False) -> Figure:
    """Image uint8 (H, W) in grey with the annotation outline (when `gt_mask` {0,1} (H, W) is
    given) and the predicted head ellipse, all in the image's pixels (`viz.plot_overlay`);
    `legend=True` names them."""
    fig = plot_overlay(image, annotation=gt_mask, ellipse=pred.head_ellipse, ax=ax, title=title,
                       legend=legend)
    if pred.head_ellipse is None:
        ax = ax if ax is not None else fig.axes[0]
        ax.text(0.02, 0.97, pred.status, transform=ax.transAxes, color=NO_HEAD_COLOR, va="top",
                fontsize=9)
    return fig


def pick_examples(df: pd.DataFrame, column: str = "dice") -> dict[str, int]:
    """Row positions of the best, median and worst image by `column` (higher is better)."""
    values = df[column].to_numpy(dtype=np.float64)
    order = np.argsort(np.where(np.isfinite(values), values, -np.inf), kind="stable")
    return {"best": int(order[-1]), "median": int(order[len(order) // 2]), "worst": int(order[0])}


def prediction_examples(df: pd.DataFrame, predictor: Predictor,
                        root: str | os.PathLike | None = None,
                        files: Mapping[str, tuple[Path, Path]] | None = None,
                        reference: str = "CSV") -> Figure:
    """Best, median and worst image of an `evaluate_split` (or `evaluate_folder`) table by
    Dice: each re-predicted with `predictor`, shown with the annotation and the predicted
    ellipse (`plot_prediction`). Images and masks are HC18's under `root`, or `files`:
    {file name: (image file, mask file)}; `reference` names where the true HC comes from."""
    from fetalhead.data import load_labelled

    picks = pick_examples(df)
    fig = Figure(figsize=(12.0, 3.3), layout="constrained")
    axes = fig.subplots(1, len(picks))
    for k, (ax, (label, i)) in enumerate(zip(np.atleast_1d(axes), picks.items(), strict=True)):
        row = df.iloc[i]
        name = row["filename"]
        image, gt = load_labelled(name, root=root, files=files)
        pred = predictor.predict(image, float(row["pixel_size_mm"]))
        title = (f"{label}: {name}  Dice {row['dice']:.3f}\n"
                 f"HC {row['hc_pred_mm']:.1f} mm ({reference} {row['hc_true_mm']:.1f} mm)")
        plot_prediction(image, pred, gt, ax=ax, title=title, legend=k == 0)
    return fig


def limits_of_agreement(pred: ArrayLike, true: ArrayLike) -> tuple[float, float, float]:
    """(mean difference, lower, upper limit of agreement) of pred - true, mm: mean -/+ 1.96 SD
    (Bland & Altman 1986, Lancet 327:307-310). Pairs with a NaN are left out; the limits are
    NaN for fewer than two pairs (no SD)."""
    d = np.asarray(pred, np.float64) - np.asarray(true, np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if d.size > 1 else float("nan")
    return mean, mean - 1.96 * sd, mean + 1.96 * sd


def bland_altman(hc_pred: ArrayLike, hc_true: ArrayLike, ax: Axes | None = None,
                 reference: str = "CSV") -> Figure:
    """Bland-Altman plot of predicted vs reference head circumference (mm; `reference` names
    it): the difference pred - reference against the mean of the two, with the bias and the
    95 % limits of agreement."""
    pred, true = np.asarray(hc_pred, np.float64), np.asarray(hc_true, np.float64)
    ok = np.isfinite(pred) & np.isfinite(true)
    fig, ax = new_axes(ax, figsize=(5.5, 4.0))
    ax.scatter((pred[ok] + true[ok]) / 2, pred[ok] - true[ok], s=10, alpha=0.6, color="C0")
    mean, lo, hi = limits_of_agreement(pred, true)
    if math.isfinite(mean):
        for y, style, label in ((mean, "-", f"bias {mean:+.2f} mm"),
                                (lo, "--", f"-1.96 SD {lo:+.2f} mm"),
                                (hi, "--", f"+1.96 SD {hi:+.2f} mm")):
            ax.axhline(y, color="C3", ls=style, lw=1, label=label)
        ax.legend(fontsize=8, loc="best")
    ax.axhline(0, color="0.6", lw=0.8)
    missing = int((~ok).sum())
    ax.set_xlabel(f"mean of predicted and {reference} HC (mm)")
    ax.set_ylabel(f"predicted - {reference} HC (mm)")
    ax.set_title(f"Bland-Altman, n = {int(ok.sum())}" + (f" ({missing} without a head)" if missing else ""),
                 fontsize=10)
    return fig


def dice_histogram(dice: ArrayLike, ax: Axes | None = None, bins: int = 30) -> Figure:
    """Histogram of per-image Dice (original resolution) with its median marked."""
    d = np.asarray(dice, np.float64)
    d = d[np.isfinite(d)]
    fig, ax = new_axes(ax, figsize=(5.0, 3.5))
    ax.hist(d, bins=bins, range=(min(0.5, float(d.min())) if d.size else 0.0, 1.0), color="C2",
            edgecolor="white")
    if d.size:
        med = float(np.median(d))
        ax.axvline(med, color="k", ls="--", lw=1, label=f"median {med:.3f}")
        ax.legend(fontsize=8, loc="upper left")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Dice (original resolution)")
    ax.set_ylabel("images")
    ax.set_title(f"Dice distribution, n = {d.size}", fontsize=10)
    return fig


def review_scatter(df: pd.DataFrame, review_below: float, gross_mm: float = 6.0,
                   ax: Axes | None = None) -> Figure:
    """|HC error| (mm) against the undecided band in mm of HC (`q_hc_band_mm`), one point per
    image of an `evaluate_split` table with quality columns: red where the quality score is
    below `review_below` (flagged), a dashed line at `gross_mm` (gross errors above it)."""
    fig, ax = new_axes(ax, figsize=(5.0, 3.5))
    d = df[np.isfinite(df["hc_abs_error_mm"].astype(float))]
    flagged = d["quality"].to_numpy(float) < review_below
    gross = d["hc_abs_error_mm"].to_numpy(float) > gross_mm
    for mask, color, label in ((~flagged, "C0", "ok"), (flagged, "C3", f"review (score < {review_below:g})")):
        ax.scatter(d.loc[mask, "q_hc_band_mm"], d.loc[mask, "hc_abs_error_mm"], s=9, color=color,
                   alpha=0.6, lw=0, label=f"{label}: {int(mask.sum())}, gross {int((mask & gross).sum())}")
    ax.axhline(gross_mm, color="0.4", ls="--", lw=1)
    ax.set_xlabel("undecided band along the outline (mm of HC)")
    ax.set_ylabel("|HC difference| (mm)")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"n = {len(d)}, {int(gross.sum())} off by > {gross_mm:g} mm", fontsize=10)
    return fig


def interval_plot(df: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Predicted minus reference HC (mm) against the pixel size (mm), one point per image of an
    `evaluate_split` table, inside the shaded 90 % interval (`fetalhead.interval`, which widens
    with the pixel size) in blue, outside it in red."""
    from fetalhead.interval import COVERAGE, half_width_mm, inside

    fig, ax = new_axes(ax, figsize=(5.0, 3.5))
    d = df[np.isfinite(df["hc_error_mm"].astype(float))]
    held = inside(d)
    p = np.linspace(float(d["pixel_size_mm"].min()), float(d["pixel_size_mm"].max()), 50)
    ax.fill_between(p, -half_width_mm(p), half_width_mm(p), color="C0", alpha=0.15, lw=0,
                    label=f"{100 * COVERAGE:g} % interval")
    for mask, color, label in ((held, "C0", "inside"), (~held, "C3", "outside")):
        ax.scatter(d.loc[mask, "pixel_size_mm"], d.loc[mask, "hc_error_mm"], s=9, color=color, alpha=0.7,
                   lw=0, label=f"{label}: {int(mask.sum())}")
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set_xlabel("pixel size (mm)")
    ax.set_ylabel("predicted - reference HC (mm)")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"n = {len(d)}: {100 * held.mean():.1f} % inside", fontsize=10)
    return fig


def diameter_plot(df: pd.DataFrame) -> Figure:
    """Two panels from an `evaluate_split` table: predicted minus reference BPD and OFD (mm)
    against the reference diameter, and predicted against reference cephalic index with the
    ends of Hadlock's normal range (`fetalhead.biometry.CEPHALIC_INDEX_RANGE`) dashed, so that
    the three diagonal cells hold the images whose head shape the prediction gets right; one
    point per image with a head."""
    from fetalhead.biometry import CEPHALIC_INDEX_RANGE

    fig = Figure(figsize=(9.0, 3.8), layout="constrained")
    ax_mm, ax_ci = fig.subplots(1, 2)
    d = df[np.isfinite(df["bpd_error_mm"].astype(float))]
    for name, color in (("bpd", "C0"), ("ofd", "C1")):
        ax_mm.scatter(d[f"{name}_true_mm"], d[f"{name}_error_mm"], s=9, color=color, alpha=0.7, lw=0,
                      label=f"{name.upper()}: mean |diff| {d[f'{name}_abs_error_mm'].mean():.2f} mm")
    ax_mm.axhline(0.0, color="0.4", lw=0.8)
    ax_mm.set_xlabel("reference diameter (mm)")
    ax_mm.set_ylabel("predicted - reference (mm)")
    ax_mm.legend(fontsize=8, loc="upper left")
    ax_mm.set_title(f"head diameters, n = {len(d)}", fontsize=10)
    ref = d["cephalic_index_true"].astype(float)
    pred = ref + d["cephalic_index_error"].astype(float)
    lims = [min(ref.min(), pred.min()) - 1, max(ref.max(), pred.max()) + 1]
    for end in CEPHALIC_INDEX_RANGE:
        ax_ci.axvline(end, color="0.5", ls="--", lw=0.8)
        ax_ci.axhline(end, color="0.5", ls="--", lw=0.8)
    ax_ci.scatter(ref, pred, s=9, color="C2", alpha=0.7, lw=0)
    ax_ci.plot(lims, lims, color="0.4", lw=0.8)
    ax_ci.set_xlim(lims)
    ax_ci.set_ylim(lims)
    low, high = CEPHALIC_INDEX_RANGE
    ax_ci.set_xlabel(f"reference cephalic index (dashed: {low:g} and {high:g})")
    ax_ci.set_ylabel("predicted cephalic index")
    ax_ci.set_title(f"BPD / OFD x 100: mean |diff| {d['cephalic_index_abs_error'].mean():.2f}", fontsize=10)
    return fig


def risk_coverage_plot(curve: pd.DataFrame, flagged_coverage: float | None = None,
                       ax: Axes | None = None) -> Figure:
    """Mean |HC error| (mm) of the kept images against the fraction kept (`evaluate.risk_coverage`),
    for the quality score and for the oracle that sets aside the truly worst; a dotted line
    marks the coverage the review flag leaves (`flagged_coverage`)."""
    fig, ax = new_axes(ax, figsize=(5.0, 3.5))
    ax.plot(100 * curve["coverage"], curve["hc_abs_error_mm"], color="C0", label="kept by quality score")
    ax.plot(100 * curve["coverage"], curve["oracle_hc_abs_error_mm"], color="0.5", ls="--",
            label="kept by true error (oracle)")
    if flagged_coverage is not None:
        ax.axvline(100 * flagged_coverage, color="C3", ls=":", lw=1.2, label="review flag")
    ax.set_xlabel("images kept (%)")
    ax.set_ylabel("HC mean |difference| of kept (mm)")
    ax.set_xlim(left=max(0.0, 100 * float(curve["coverage"].min()) - 1), right=101)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"risk-coverage, n = {len(curve)}", fontsize=10)
    return fig


def centile_agreement(df: pd.DataFrame) -> pd.DataFrame:
    """Per image with a head of an `evaluate_split` table: what the centile of the model's HC
    would say at a known age. HC18 holds no dates, so the age the sonographer's HC gives by
    Hadlock (`fetalhead.ellipse.gestational_age_weeks`) stands in for one. Columns: filename,
    ga_weeks, hc_true_mm, hc_pred_mm, hc_low_mm, hc_high_mm (the `fetalhead.interval` interval),
    centile_true, centile_pred, centile_low, centile_high (INTERGROWTH-21st, percent;
    `fetalhead.growth.hc_for_age`), band_true, band_pred; nan centiles (and "" bands) outside
    the standard's weeks."""
    from fetalhead.ellipse import gestational_age_weeks
    from fetalhead.growth import hc_for_age
    from fetalhead.interval import half_width_mm

    d = df[np.isfinite(df["hc_pred_mm"].astype(float))]
    rows = []
    for r in d.itertuples(index=False):
        ga = gestational_age_weeks(r.hc_true_mm)[0]
        w = half_width_mm(r.pixel_size_mm)
        true, pred = hc_for_age(r.hc_true_mm, ga), hc_for_age(r.hc_pred_mm, ga, (r.hc_pred_mm - w, r.hc_pred_mm + w))
        rows.append({"filename": r.filename, "ga_weeks": ga, "hc_true_mm": r.hc_true_mm, "hc_pred_mm": r.hc_pred_mm,
                     "hc_low_mm": r.hc_pred_mm - w, "hc_high_mm": r.hc_pred_mm + w,
                     "centile_true": true.centile, "centile_pred": pred.centile, "centile_low": pred.centile_low,
                     "centile_high": pred.centile_high, "band_true": true.band, "band_pred": pred.band})
    return pd.DataFrame(rows)


def growth_chart(table: pd.DataFrame | None = None, ax: Axes | None = None) -> Figure:
    """The INTERGROWTH-21st HC standard (3rd, 50th and 97th centile, mm, against weeks) with
    Hadlock's dating curve dashed (the HC whose Hadlock age is that many weeks) and, given a
    `centile_agreement` table, each image's predicted HC with its interval at its age."""
    from fetalhead.ellipse import HADLOCK_HC_RANGE_MM, gestational_age_weeks
    from fetalhead.growth import CENTILE_BANDS, GA_RANGE_WEEKS, hc_at_centile_mm, hc_mean_mm

    fig, ax = new_axes(ax, figsize=(6.0, 4.2))
    weeks = np.linspace(*GA_RANGE_WEEKS, 105)
    low, high = ([hc_at_centile_mm(g, c) for g in weeks] for c in CENTILE_BANDS)
    ax.fill_between(weeks, low, high, color="C0", alpha=0.12, lw=0, label="INTERGROWTH-21st 3rd-97th centile")
    ax.plot(weeks, [hc_mean_mm(g) for g in weeks], color="C0", lw=1.2, label="INTERGROWTH-21st 50th centile")
    hc = np.linspace(*HADLOCK_HC_RANGE_MM, 100)
    ax.plot([gestational_age_weeks(h)[0] for h in hc], hc, "--", color="0.35", lw=1.0,
            label="Hadlock 1984 (HC -> age)")
    if table is not None and len(table):
        t = table[np.isfinite(table["centile_pred"].astype(float))]
        ax.errorbar(t["ga_weeks"], t["hc_pred_mm"], yerr=[t["hc_pred_mm"] - t["hc_low_mm"], t["hc_high_mm"] - t["hc_pred_mm"]],
                    fmt="o", ms=2.5, color=ELLIPSE_COLOR, ecolor=ELLIPSE_COLOR, elinewidth=0.6, alpha=0.8,
                    label=f"model's HC with its 90 % interval (n = {len(t)})")
    ax.set_xlim(GA_RANGE_WEEKS[0] - 2, GA_RANGE_WEEKS[1] + 2)
    ax.set_xlabel("gestational age (weeks)")
    ax.set_ylabel("head circumference (mm)")
    ax.legend(fontsize=8, loc="upper left")
    return fig

