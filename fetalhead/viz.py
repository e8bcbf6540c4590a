"""Plots, the colours of what is drawn over an image, and saving figures.

Every plot function takes an optional `ax`, returns the Figure and never calls plt.show().
Figures are built with matplotlib's object API (`matplotlib.figure.Figure`), not pyplot's global
state, so a library call never leaks an open figure; Jupyter still displays a returned Figure.
`plot_overlay` draws an image with a prediction, an annotation and a fitted ellipse in the
palette's colours, for the report's figures and the prediction viewer alike. `save_figure`
writes into `figures/` under a stable name, so notebooks and the README can link it.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse as EllipsePatch
from matplotlib.ticker import MaxNLocator

from fetalhead.config import quick_mode
from fetalhead.paths import cache_dir, figures_dir

if TYPE_CHECKING:  # pragma: no cover
    from fetalhead.ellipse import Ellipse

__all__ = [
    "ANNOTATION_COLOR",
    "ELLIPSE_COLOR",
    "FIGURE_DPI",
    "NO_HEAD_COLOR",
    "PREDICTION_COLOR",
    "figure_to_png",
    "frame_views",
    "new_axes",
    "plot_history",
    "plot_overlay",
    "rgb255",
    "save_figure",
    "show_pair",
]

# The palette: one colour per thing drawn over an ultrasound image, in every figure, the
# prediction viewer and the overlays of `fetalhead predict`. All read well on grey.
PREDICTION_COLOR = "#f032e6"  # magenta fill: the thresholded prediction
ANNOTATION_COLOR = "#00e5ff"  # cyan outline (and tint): the sonographer's annotation
ELLIPSE_COLOR = "#ff8c00"  # orange, dashed: the head ellipse fitted to the prediction
NO_HEAD_COLOR = "#ff3c3c"  # red text: no head found

FIGURE_DPI = 80  # saved figures: modest, so the committed ones stay small


def rgb255(color: str) -> tuple[int, int, int]:
    """A matplotlib colour as (R, G, B) integers 0-255, for OpenCV drawing."""
    r, g, b = (round(255 * c) for c in to_rgb(color))
    return r, g, b


def new_axes(ax: Axes | None = None, figsize: tuple[float, float] = (5.0, 4.0)) -> tuple[Figure, Axes]:
    """`ax` and its figure, or a fresh Figure with one Axes when `ax` is None."""
    if ax is not None:
        return ax.get_figure(), ax  # type: ignore[return-value]
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def save_figure(fig: Figure, name: str, out_dir: str | os.PathLike | None = None,
                dpi: int = FIGURE_DPI) -> Path:
    """Save `fig` as <out_dir>/<name> (PNG unless `name` has a suffix); returns the path.

    `out_dir=None` means `figures/` (`fetalhead.paths.figures_dir()`), where the notebooks keep
    their figures under stable names; in quick mode (tests, CI) it means <cache>/figures
    instead, so a test run never overwrites the committed figures of a full run.
    """
    if out_dir is not None:
        folder = Path(out_dir)
    elif quick_mode():
        folder = cache_dir() / "figures"
    else:
        folder = figures_dir()
    path = folder / name
    if not path.suffix:
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def figure_to_png(fig: Figure) -> bytes:
    """Render a matplotlib `Figure` (object API) to PNG bytes with the Agg canvas."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    buf = io.BytesIO()
    canvas.print_png(buf)
    return buf.getvalue()


def plot_history(history: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Training curves from `fit`'s history (columns epoch, train_loss, val_loss, val_dice).

    With `ax=None`: two panels, losses (left) and validation Dice (right). With an `ax`: losses
    on it and Dice on a twin right-hand axis. The best epoch (highest val Dice) is marked.
    """
    if ax is None:
        fig = Figure(figsize=(9.0, 3.6), layout="constrained")
        ax_loss, ax_dice = fig.subplots(1, 2)
    else:
        fig, ax_loss = ax.get_figure(), ax
        ax_dice = ax.twinx()
    ep = history["epoch"].to_numpy()
    ax_loss.plot(ep, history["train_loss"], "o-", ms=3, label="train loss")
    ax_loss.plot(ep, history["val_loss"], "s-", ms=3, label="val loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("BCE + Dice loss")
    for a in (ax_loss, ax_dice):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    dice_color = "C2"
    ax_dice.plot(ep, history["val_dice"], "^-", ms=3, color=dice_color, label="val Dice")
    ax_dice.set_ylabel("validation Dice (training resolution)")
    if len(history) and history["val_dice"].notna().any():
        best = history.loc[history["val_dice"].idxmax()]
        for a in (ax_loss, ax_dice):
            a.axvline(best["epoch"], color="0.6", ls="--", lw=1)
        ax_dice.annotate(f"best {best['val_dice']:.4f} @ {int(best['epoch'])}",
                         (best["epoch"], best["val_dice"]), textcoords="offset points",
                         xytext=(-10, -14), ha="right", fontsize=8)
    if ax is None:
        ax_loss.legend()
        ax_dice.set_xlabel("epoch")
        ax_dice.set_title("validation Dice")
        ax_loss.set_title("loss")
    else:
        lines = ax_loss.get_lines() + ax_dice.get_lines()
        ax_loss.legend(lines, [ln.get_label() for ln in lines], loc="center right")
    return fig  # type: ignore[return-value]


def plot_overlay(image: np.ndarray, prediction: np.ndarray | None = None,
                 annotation: np.ndarray | None = None, ellipse: Ellipse | None = None,
                 ax: Axes | None = None, *, title: str | None = None, opacity: float = 0.3,
                 annotation_opacity: float = 0.0, legend: bool = False,
                 prediction_label: str = "prediction") -> Figure:
    """Image uint8 (H, W) in grey with, in the palette's colours and the image's pixels:

    - `prediction` {0,1} (H, W): a fill of `opacity` (0 to 1);
    - `annotation` {0,1} (H, W): its outline, and a tint of `annotation_opacity`;
    - `ellipse` (pixels): dashed, so the annotation shows through where the two coincide.

    Masks must have the image's shape. `legend=True` names each layer drawn (the prediction
    as `prediction_label`). The axes keep the image's orientation (y down) and extent.
    """
    h, w = image.shape[:2]
    for name, m in (("prediction", prediction), ("annotation", annotation)):
        if m is not None and np.shape(m)[:2] != (h, w):
            raise ValueError(f"{name} shape {np.shape(m)} differs from image shape {image.shape}")
    fig, ax = new_axes(ax, figsize=(5.0, 5.0 * h / w + 0.4))
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    handles = []
    if prediction is not None:
        _fill(ax, prediction, PREDICTION_COLOR, opacity)
        handles.append(Line2D([], [], color=PREDICTION_COLOR, lw=6, alpha=0.6, label=prediction_label))
    if annotation is not None:
        a = np.asarray(annotation) > 0
        if annotation_opacity > 0:
            _fill(ax, a, ANNOTATION_COLOR, annotation_opacity)
        if a.any() and not a.all():
            ax.contour(a.astype(np.float32), levels=[0.5], colors=[ANNOTATION_COLOR], linewidths=1.2)
            handles.append(Line2D([], [], color=ANNOTATION_COLOR, lw=1.2, label="annotation"))
    if ellipse is not None:
        # imshow puts y downwards, so a positive patch angle turns from +x towards +y, the
        # convention of fetalhead.ellipse.
        ax.add_patch(EllipsePatch((ellipse.cx, ellipse.cy), 2 * ellipse.a, 2 * ellipse.b,
                                  angle=math.degrees(ellipse.angle_rad), fill=False,
                                  edgecolor=ELLIPSE_COLOR, ls="--", lw=1.5))
        handles.append(Line2D([], [], color=ELLIPSE_COLOR, ls="--", lw=1.5, label="fitted ellipse"))
    if legend and handles:
        ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.7)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def show_pair(image: np.ndarray, mask: np.ndarray | None, ax: Axes | None = None,
              title: str | None = None, alpha: float = 0.25) -> Figure:
    """Image uint8 (H, W) in grey with its annotation mask {0,1} (H, W) tinted and outlined.

    The mask must have the image's shape (pixels); `mask=None` shows the image alone.
    """
    return plot_overlay(image, annotation=mask, ax=ax, title=title, annotation_opacity=alpha)


def frame_views(frame: np.ndarray, size: tuple[int, int]) -> Figure:
    """Three panels: a frame uint8 (H, W) of any shape, and the network's input of `size`
    (H, W) pixels made from it resized as it is and padded to HC18's shape first
    (`fetalhead.frame.network_image`, the Predictor's way), each drawn with square pixels."""
    from fetalhead.frame import network_image
    from fetalhead.transforms import resize_image

    fig = Figure(figsize=(11.0, 3.2), layout="constrained")
    axes = fig.subplots(1, 3, width_ratios=[frame.shape[1] / frame.shape[0], size[1] / size[0], size[1] / size[0]])
    views = ((frame, f"the frame, {frame.shape[0]}x{frame.shape[1]} px"),
             (resize_image(frame, size), f"resized as it is to {size[0]}x{size[1]}"),
             (network_image(frame, size), "padded to HC18's shape, then resized"))
    for ax, (image, title) in zip(axes, views, strict=True):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    return fig


def _fill(ax: Axes, mask: np.ndarray, color: str, opacity: float) -> None:
    """Tint the pixels of `mask` (H, W) on `ax` with `color` at `opacity`: one RGBA layer."""
    layer = np.zeros((*np.shape(mask)[:2], 4), np.float32)
    layer[np.asarray(mask) > 0] = (*to_rgb(color), float(opacity))
    ax.imshow(layer, interpolation="nearest")
