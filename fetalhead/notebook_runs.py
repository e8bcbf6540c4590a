"""The notebooks' own training runs: which recipe a device can afford (notebook 04), the images
it trains on, a sentence saying plainly what a run is, a live loss plot, where the checkpoint
goes, and which model notebooks 05 and 06 evaluate.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from fetalhead.cache import ArraySet, load_arrays
from fetalhead.checkpoint import load_checkpoint
from fetalhead.config import TrainConfig, get_config
from fetalhead.paths import repo_root, shipped_checkpoint
from fetalhead.split import load_split
from fetalhead.train import fit
from fetalhead.viz import plot_history

__all__ = [
    "CPU_DEMO",
    "LiveHistoryPlot",
    "compare_configs",
    "describe_checkpoint",
    "load_training_arrays",
    "notebook_checkpoint",
    "notebook_config",
    "notebook_run_dir",
    "training_banner",
]


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

    HC18 file names grow with gestational age, so the first files are all small heads; a
    random sample covers every head size. Sampling here, before loading, means only the
    sampled images are decoded (`fit` also caps by a seeded random sample, but of arrays
    already loaded).
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
    and whether it is the full `default` recipe (preset "default" on CUDA, not quick; the
    shipped `default` model is the `small` recipe at width 32, trained outside the notebook)."""
    dev = torch.device(device).type
    real = dev == "cuda" and cfg.name == "default" and not quick
    what = ("the full 'default' recipe" if real else
            "a SHORT demonstration run, NOT a shipped model (those are in "
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

    In order: the shipped weights; else `best.pt` written by notebook 04
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
