"""Data-set exploration for the notebooks: images per exam, image sizes, example rows, summary
tables, split sizes, gestational ages and trimesters, and their plots.

Everything returns plain tables or figures, so a notebook cell stays a call or two long and
tests can check the same numbers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

from fetalhead.ellipse import HADLOCK_HC_RANGE_MM, gestational_age_weeks
from fetalhead.viz import new_axes

__all__ = [
    "gestational_ages",
    "image_size_counts",
    "images_per_exam",
    "plot_distributions",
    "plot_hc_vs_ga",
    "split_sizes",
    "spread_rows",
    "summary_table",
    "trimester_counts",
]


def images_per_exam(df: pd.DataFrame) -> pd.DataFrame:
    """How many exams have 1, 2, 3 ... images. `df` needs an `exam` column (one row per image).

    Returns a table indexed by `images_per_exam` with columns `exams` and `images`.
    """
    counts = df.groupby("exam").size()
    table = counts.value_counts().sort_index().rename("exams").to_frame()
    table.index.name = "images_per_exam"
    table["images"] = table.index * table["exams"]
    return table


def image_size_counts(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """How many files have each (width, height) in pixels; reads only the file headers."""
    sizes = []
    for p in paths:
        with Image.open(p) as im:
            sizes.append(im.size)
    table = pd.DataFrame(sizes, columns=["width", "height"]).value_counts().rename("images")
    return table.reset_index()


def spread_rows(df: pd.DataFrame, n: int, column: str = "hc_mm") -> pd.DataFrame:
    """`n` rows of `df` evenly spaced in the order of `column`, from its smallest to its largest
    value (e.g. example images from the smallest head to the largest). With odd `n` the middle
    row is always the median row, whatever `n`."""
    ordered = df.sort_values(column, kind="stable")
    return ordered.iloc[np.linspace(0, len(ordered) - 1, n).astype(int)]


def summary_table(df: pd.DataFrame, columns: Sequence[str] = ("pixel_size_mm", "hc_mm")) -> pd.DataFrame:
    """count, mean, std, min, quartiles and max of `columns` (one row per column), rounded to 3."""
    return df[list(columns)].describe().T.round(3)


def split_sizes(split: pd.DataFrame) -> pd.DataFrame:
    """Images and exams per part of a split table (columns `exam`, `split`), in the order
    train, val, test, challenge (parts absent from `split` are left out)."""
    order = [p for p in ("train", "val", "test", "challenge") if p in set(split["split"])]
    g = split.groupby("split")
    table = pd.DataFrame({"images": g.size(), "exams": g["exam"].nunique()}).loc[order]
    labelled = table["images"].drop(index="challenge", errors="ignore").sum()
    # fraction of the labelled images (the challenge images have no public masks)
    table["fraction"] = (table["images"] / labelled).round(3).where(table.index != "challenge")
    table.index.name = "split"
    return table


def gestational_ages(hc_mm: Sequence[float] | np.ndarray) -> pd.DataFrame:
    """Hadlock gestational age of each HC (mm): columns hc_mm, ga_weeks, in_range, trimester.

    Trimesters by estimated age: first < 14 weeks, second 14 to < 28, third >= 28 ("unknown"
    for a nan HC). Ages below 14 weeks are extrapolations of Hadlock's formula (see
    `ellipse.gestational_age_weeks`).
    """
    hc = np.asarray(hc_mm, dtype=np.float64)
    ga = [gestational_age_weeks(h) for h in hc]
    weeks = np.array([w for w, _ in ga])
    trimester = np.select([np.isnan(weeks), weeks < 14, weeks < 28], ["unknown", "first", "second"], "third")
    return pd.DataFrame({"hc_mm": hc, "ga_weeks": weeks, "in_range": [r for _, r in ga],
                         "trimester": trimester})


def trimester_counts(hc_mm: Sequence[float] | np.ndarray) -> pd.DataFrame:
    """Images per trimester (estimated from HC in mm) with the HC range of each, in mm."""
    ga = gestational_ages(hc_mm)
    g = ga.groupby("trimester")["hc_mm"]
    table = pd.DataFrame({"images": g.size(), "hc_min_mm": g.min(), "hc_max_mm": g.max()})
    return table.reindex(["first", "second", "third"]).dropna().astype({"images": int}).round(1)


def plot_distributions(df: pd.DataFrame, bins: int = 40) -> Figure:
    """Histograms of pixel_size_mm (mm per pixel) and hc_mm (mm), side by side."""
    fig = Figure(figsize=(9.0, 3.2), layout="constrained")
    ax_px, ax_hc = fig.subplots(1, 2)
    ax_px.hist(df["pixel_size_mm"], bins=bins, color="C0")
    ax_px.set(xlabel="pixel size (mm per pixel)", ylabel="images", title="pixel size")
    ax_hc.hist(df["hc_mm"], bins=bins, color="C1")
    ax_hc.set(xlabel="head circumference (mm)", ylabel="images", title="head circumference (CSV)")
    return fig


def plot_hc_vs_ga(df: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Hadlock's curve of gestational age (weeks) against HC (mm), with one dot per image of
    `df` (column hc_mm) on it, and the HC range the formula was fitted on shaded."""
    fig, ax = new_axes(ax, figsize=(6.0, 3.8))
    ga = gestational_ages(df["hc_mm"])
    hc = np.linspace(min(40.0, ga["hc_mm"].min()), max(360.0, ga["hc_mm"].max()), 200)
    ax.axvspan(*HADLOCK_HC_RANGE_MM, color="0.92", label="Hadlock's fitted range (14-42 weeks)")
    ax.plot(hc, [gestational_age_weeks(h)[0] for h in hc], color="0.3", lw=1, label="Hadlock 1984")
    for name, part in ga.groupby("trimester"):
        ax.plot(part["hc_mm"], part["ga_weeks"], "o", ms=3, alpha=0.5, label=f"{name} trimester ({len(part)})")
    ax.set(xlabel="head circumference (mm)", ylabel="gestational age (weeks)")
    ax.legend(fontsize=8, loc="upper left")
    return fig
