"""Plots. Every function takes an optional `ax`, returns the Figure and never calls plt.show().

Figures are built with matplotlib's object API (`matplotlib.figure.Figure`), not pyplot's global
state, so a library call never leaks an open figure; Jupyter still displays a returned Figure.
`save_figure` writes into `figures/` under a stable name, so notebooks and the README can link it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fetalhead.paths import figures_dir

__all__ = ["new_axes", "plot_history", "save_figure", "show_pair"]

MASK_COLOR = "#ff7f0e"  # orange: readable on grey ultrasound


def new_axes(ax: Axes | None = None, figsize: tuple[float, float] = (5.0, 4.0)) -> tuple[Figure, Axes]:
    """`ax` and its figure, or a fresh Figure with one Axes when `ax` is None."""
    if ax is not None:
        return ax.get_figure(), ax  # type: ignore[return-value]
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def save_figure(fig: Figure, name: str, dpi: int = 120) -> Path:
    """Save `fig` as figures/<name> (PNG unless `name` has a suffix); returns the path."""
    path = figures_dir() / name
    if not path.suffix:
        path = path.with_suffix(".png")
    fig.savefig(path, dpi=dpi)
    return path


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


def show_pair(image: np.ndarray, mask: np.ndarray | None, ax: Axes | None = None,
              title: str | None = None, color: str = MASK_COLOR, alpha: float = 0.25) -> Figure:
    """Image uint8 (H, W) in grey with mask {0,1} (H, W) overlaid (tinted fill + outline).

    The mask must have the image's shape (pixels); `mask=None` shows the image alone.
    """
    h, w = image.shape[:2]
    fig, ax = new_axes(ax, figsize=(5.0, 5.0 * h / w + 0.4))
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    if mask is not None:
        if mask.shape[:2] != (h, w):
            raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape}")
        m = np.asarray(mask) > 0
        ax.imshow(np.ma.masked_where(~m, m), cmap=_single_color(color), alpha=alpha,
                  vmin=0, vmax=1, interpolation="nearest")
        if m.any() and not m.all():
            ax.contour(m.astype(np.float32), levels=[0.5], colors=[color], linewidths=1.2)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def _single_color(color: str):
    from matplotlib.colors import ListedColormap

    return ListedColormap([color])
