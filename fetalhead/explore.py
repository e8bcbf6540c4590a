"""Small helpers for the notebooks: data-set tables and plots, U-Net layer tables, the
receptive field, and the bookkeeping of the notebooks' own training runs (which recipe a CPU can
afford, where the checkpoint goes, which model notebooks 05 and 06 evaluate).

Everything returns plain tables, numbers, figures or sentences, so a notebook cell stays a call
or two long and tests can check the same numbers.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from fetalhead.cache import ArraySet, load_arrays
from fetalhead.config import TrainConfig, get_config, quick_mode
from fetalhead.ellipse import HADLOCK_HC_RANGE_MM, gestational_age_weeks
from fetalhead.paths import cache_dir, repo_root, shipped_checkpoint
from fetalhead.split import load_split
from fetalhead.train import fit, load_checkpoint
from fetalhead.viz import new_axes, plot_history, save_figure

__all__ = [
    "CPU_DEMO",
    "LiveHistoryPlot",
    "compare_configs",
    "describe_checkpoint",
    "gestational_ages",
    "held_out_viewer",
    "image_size_counts",
    "images_per_exam",
    "layer_table",
    "load_training_arrays",
    "notebook_checkpoint",
    "notebook_config",
    "notebook_run_dir",
    "plot_distributions",
    "plot_hc_vs_ga",
    "receptive_field",
    "save_notebook_figure",
    "split_sizes",
    "spread_rows",
    "summary_table",
    "trimester_counts",
    "training_banner",
    "unet_receptive_field",
]

_CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d)


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


def save_notebook_figure(fig: Figure, name: str, dpi: int = 80) -> Path:
    """Save a notebook's figure as figures/<name> (modest dpi keeps the files small).

    In quick mode (tests, CI) it goes to <cache>/figures/<name> instead, so a test run never
    overwrites the committed figures of a full run with those of a quick one.
    """
    if not quick_mode():
        return save_figure(fig, name, dpi=dpi)
    path = cache_dir() / "figures" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


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


def _kind(layer: nn.Module) -> str:
    k = layer.kernel_size[0] if isinstance(layer.kernel_size, tuple) else layer.kernel_size
    return f"up-conv {k}x{k}" if isinstance(layer, nn.ConvTranspose2d) else f"conv {k}x{k}"


def layer_table(model: nn.Module, input_shape: Sequence[int]) -> pd.DataFrame:
    """Shapes through every convolution of `model` for one forward pass.

    input_shape: (B, C, H, W). Forward hooks on a weightless copy of `model` record each
    `Conv2d` / `ConvTranspose2d` in call order; `model` itself is not run or changed.
    Returns one row per conv layer: `layer` (module name), `kind`, `in_shape`, `out_shape`
    (tuples B, C, H, W) and `params` (weights + bias of that layer).
    """
    rows: list[dict] = []

    def hook(name: str):
        def record(mod: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            rows.append({
                "layer": name,
                "kind": _kind(mod),
                "in_shape": tuple(inputs[0].shape),
                "out_shape": tuple(output.shape),
                "params": sum(p.numel() for p in mod.parameters()),
            })
        return record

    # A copy on the "meta" device: shapes propagate without allocating or computing anything,
    # so even the paper's 572 x 572 input through 31 M parameters is instant.
    probe = copy.deepcopy(model).to("meta").eval()
    for name, mod in probe.named_modules():
        if isinstance(mod, _CONV_TYPES):
            mod.register_forward_hook(hook(name))
    with torch.no_grad():
        probe(torch.zeros(tuple(input_shape), device="meta"))
    table = pd.DataFrame(rows)
    table.index = pd.RangeIndex(1, len(table) + 1, name="#")
    return table


def unet_receptive_field(depth: int = 4, convs: int = 2, kernel: int = 3) -> int:
    """Largest receptive field (pixels, one side) of one output pixel of a U-Net.

    Walks back from an output pixel along the deepest path (through the bottleneck), which
    contains every other path: a k x k conv widens the field by k - 1, a 2x2 max-pool doubles
    it, and a 2x2 stride-2 up-conv maps r pixels onto at most r // 2 + 1 input pixels (when the
    window starts on an odd pixel).
    """
    widen = convs * (kernel - 1)
    r = 1  # the final 1x1 conv
    for _ in range(depth):  # decoder, top to bottom
        r = (r + widen) // 2 + 1
    r += widen  # bottleneck
    for _ in range(depth):  # encoder, bottom to top: pool, then the level's convs
        r = 2 * r + widen
    return r


def _positive_copy(model: nn.Module) -> nn.Module:
    """A float64 copy whose convs have positive weights (1 / fan-in) and zero bias, and whose
    batch norms are identities: every activation stays positive, so no ReLU hides a path.
    Max-pool modules become average pools (a max-pool written as a function call is not seen)."""
    probe = copy.deepcopy(model).double().eval()
    # Max-pooling passes the gradient to one pixel per window; average pooling has the same
    # connectivity and passes it to all of them.
    for parent in list(probe.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding))
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, _CONV_TYPES):
                fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight[:, 0].numel()
                m.weight.fill_(1.0 / fan_in)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                if m.affine:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
    return probe


def receptive_field(model: nn.Module, size: int = 256, phases: int = 1) -> int:
    """Measured receptive field (pixels, one side) of a 2D network, by back-propagation.

    Runs a positive-weight copy of `model` (see `_positive_copy`) on a (phases, C, size, size)
    input of ones and differentiates output pixels near the centre with respect to the input:
    the field is the width of the columns whose gradient is non-zero. With `phases` > 1, pixels at `phases`
    consecutive column offsets are tried and the widest field is returned (a U-Net with 4
    poolings repeats every 16 pixels). `size` must exceed the field, or the border clips it.
    """
    probe = _positive_copy(model)
    in_channels = next(m for m in probe.modules() if isinstance(m, _CONV_TYPES)).in_channels
    # One batch, sample k differentiating the pixel at column offset k: in eval mode nothing
    # mixes samples, so each sample's input gradient is the field of its own pixel.
    x = torch.ones(phases, in_channels, size, size, dtype=torch.float64, requires_grad=True)
    out = probe(x)
    cy, cx = out.shape[-2] // 2, out.shape[-1] // 2
    k = torch.arange(phases)
    out[k, 0, cy, cx + k].sum().backward()
    seen = x.grad.abs().sum(dim=(1, 2)) > 0  # (phases, size): columns each pixel sees
    return max(int(c.max() - c.min() + 1) for c in (torch.nonzero(row).flatten() for row in seen))


# ----------------------------------------------------------------------------- training runs


def compare_configs(names: Sequence[str] = ("reference", "default", "cpu")) -> pd.DataFrame:
    """The presets `names` side by side (full size, no quick mode): one row per TrainConfig
    field whose value differs between them, one column per preset."""
    cfgs = {n: get_config(n, quick=False).to_dict() for n in names}
    rows = {f.name: [str(cfgs[n][f.name]) for n in names] for f in fields(TrainConfig) if f.name != "name"}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(names))
    table.index.name = "field"
    return table[table.nunique(axis=1) > 1]


#: Caps that turn preset "cpu" into a demonstration of a few minutes on 2 CPU cores (a full
#: epoch of all 693 training images takes several minutes there when the cores are shared).
CPU_DEMO = dict(max_train_images=256, max_val_images=48, epochs=5, patience=2)


def notebook_config(device: torch.device | str, quick: bool) -> TrainConfig:
    """The recipe notebook 04 trains: preset "default" on a CUDA device (shrunk in `quick`
    mode); on a CPU, preset "cpu" capped by `CPU_DEMO`, or in `quick` mode quick's own caps."""
    if torch.device(device).type == "cuda":
        return get_config("default", quick=quick)
    return get_config("cpu", quick=True) if quick else get_config("cpu", quick=False, **CPU_DEMO)


def load_training_arrays(cfg: TrainConfig, root: str | os.PathLike | None = None) -> tuple[ArraySet, ArraySet]:
    """(train, val) ArraySets at `cfg.image_size` for `fit`, capped at `cfg.max_train_images`
    and `cfg.max_val_images` by a random sample (seed `cfg.seed`) of each part.

    `fit` keeps the FIRST images when capping, and HC18 file names grow with gestational age,
    so the first files are all small heads; a random sample covers every head size. Only the
    sampled images are decoded.
    """
    split = load_split(root=root)
    rng = np.random.default_rng(cfg.seed)
    chosen = []
    for part, cap in (("train", cfg.max_train_images), ("val", cfg.max_val_images)):
        rows = split[split["split"] == part]
        if cap is not None and cap < len(rows):
            rows = rows.iloc[np.sort(rng.choice(len(rows), cap, replace=False))]
        chosen.append(rows)
    data = load_arrays(["train", "val"], cfg.image_size, root=root, split=pd.concat(chosen), progress=False)
    return data.part("train"), data.part("val")


def training_banner(cfg: TrainConfig, device: torch.device | str, quick: bool) -> str:
    """One plain sentence saying what a notebook training run is: device, preset, quick mode,
    and whether it can stand for the GPU model (preset "default" on CUDA, not quick)."""
    dev = torch.device(device).type
    real = dev == "cuda" and cfg.name == "default" and not quick
    what = ("the full recipe" if real else
            "a SHORT demonstration run, NOT a shipped model (those were trained on a GPU: "
            "section 5)")
    images = "all" if cfg.max_train_images is None else f"at most {cfg.max_train_images}"
    return (f"device: {dev}; quick mode: {'on' if quick else 'off'}; preset '{cfg.name}': "
            f"{cfg.image_size[0]}x{cfg.image_size[1]} px, width {cfg.base_channels}, "
            f"up to {cfg.epochs} epochs on {images} training images. This is {what}.")


class LiveHistoryPlot:
    """A `fit(callback=...)` hook that redraws the training curves in ONE notebook output.

    Each call draws `viz.plot_history(history)` and replaces the previous drawing through an
    IPython display handle, so the cell shows a single figure that grows epoch by epoch.
    Returns False: it never stops training. Outside IPython it prints the figure's repr.
    """

    def __init__(self) -> None:
        self.handle = None
        self.calls = 0
        self.figure: Figure | None = None

    def __call__(self, epoch: int, history: pd.DataFrame) -> bool:
        from IPython.display import display  # IPython comes with ipywidgets

        self.figure = plot_history(history)
        if self.handle is None:
            self.handle = display(self.figure, display_id=True)
        else:
            self.handle.update(self.figure)
        self.calls += 1
        return False


def notebook_run_dir(name: str = "04_training") -> Path:
    """`runs/<name>` in the checkout (git-ignored), else under the current folder: where
    notebook 04 trains and where notebooks 05 and 06 look for its checkpoint."""
    return (repo_root() or Path.cwd()) / "runs" / name


def describe_checkpoint(path: str | os.PathLike) -> str:
    """One line about a checkpoint: preset, input size, width, epochs, images, validation Dice."""
    _, cfg, meta = load_checkpoint(path)
    dice = meta.get("metrics", {}).get("val_dice", float("nan"))
    images = "all" if cfg.max_train_images is None else f"at most {cfg.max_train_images}"
    return (f"preset '{cfg.name}', {cfg.image_size[0]}x{cfg.image_size[1]} px, width "
            f"{cfg.base_channels}, best epoch {meta.get('epoch')}, training images: {images}, "
            f"validation Dice {dice:.3f} (training resolution)")


def notebook_checkpoint(quick: bool, root: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The model notebooks 05 and 06 evaluate, and a sentence saying plainly which it is.

    In order: the shipped weights (trained on a GPU); else `best.pt` written by notebook 04
    (`notebook_run_dir()`), a short CPU run unless 04 ran on a GPU; else a stand-in trained here
    and now on the CPU with `notebook_config("cpu", quick)` (a few minutes) into runs/cpu_standin,
    or the stand-in a previous call trained there.
    """
    shipped = shipped_checkpoint()
    if shipped.is_file():
        return shipped, f"the shipped model {shipped.name} ({describe_checkpoint(shipped)})"
    ours = notebook_run_dir() / "best.pt"
    if ours.is_file():
        return ours, (f"NOT the shipped GPU model (none is installed) but the checkpoint notebook 04 "
                      f"wrote, {ours.relative_to(ours.parents[2])}: {describe_checkpoint(ours)}")
    out = notebook_run_dir("cpu_standin") / "best.pt"
    if not out.is_file():
        cfg = notebook_config("cpu", quick)
        torch.manual_seed(cfg.seed)
        fit(cfg, *load_training_arrays(cfg, root), out.parent, device="cpu", progress=False)
    return out, (f"NOT the shipped GPU model (none is installed, and notebook 04 has not run) but a "
                 f"stand-in just trained on the CPU: {describe_checkpoint(out)}")


def held_out_viewer(n: int = 6, model: str | None = None, root: str | os.PathLike | None = None,
                    **kwargs):
    """The prediction viewer over `n` held-out test images, spread from the smallest head to the
    largest, with the shipped model `model` (default: the best present); the synthetic demo
    viewer (`fetalhead.widgets.demo_viewer`) when HC18 or the shipped weights are missing.
    Other keyword arguments go to `PredictionViewer`."""
    from fetalhead.data import (
        annotation_path,
        check_data_dir,
        image_path,
        load_pair,
        read_training_csv,
    )
    from fetalhead.errors import FetalheadError
    from fetalhead.predict import Predictor
    from fetalhead.widgets import PredictionViewer, demo_viewer

    try:
        root = check_data_dir(root)
        predictor = Predictor.from_checkpoint(model=model, device="cpu")
    except FetalheadError:
        return demo_viewer(n=n, **kwargs)
    rows = read_training_csv(root).merge(load_split(root=root)).query("split == 'test'")
    rows = spread_rows(rows, n, "hc_mm")
    pairs = [load_pair(image_path(f, root=root), annotation_path(f, root)) for f in rows["filename"]]
    return PredictionViewer.from_predictor(
        predictor, [im for im, _ in pairs], rows["pixel_size_mm"].to_numpy(float), list(rows["filename"]),
        [m for _, m in pairs], rows["hc_mm"].to_numpy(float), **kwargs)
