"""Tests for fetalhead.notebook_runs: recipes per device, banners, the live plot, which
checkpoint notebooks 05 and 06 evaluate."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from fetalhead import notebook_runs
from fetalhead.checkpoint import save_checkpoint
from fetalhead.config import get_config
from fetalhead.model import build_model
from fetalhead.notebook_runs import (
    CPU_DEMO,
    LiveHistoryPlot,
    compare_configs,
    describe_checkpoint,
    load_training_arrays,
    notebook_checkpoint,
    notebook_config,
    training_banner,
)

HAVE_DATA = bool(os.environ.get("HC18_DIR")) and Path(os.environ["HC18_DIR"], "training_set").is_dir()


def test_compare_configs_lists_only_differences():
    table = compare_configs(["reference", "default"])
    assert list(table.columns) == ["reference", "default"]
    assert table.loc["image_size"].tolist() == ["(572, 572)", "(320, 480)"]
    assert "hflip" not in table.index and "name" not in table.index  # equal in both / not a setting
    assert (table.nunique(axis=1) == 2).all()


def test_notebook_config_per_device_and_mode():
    assert notebook_config("cuda", False) == get_config("default", quick=False)
    assert notebook_config("cuda", True) == get_config("default", quick=True)
    assert notebook_config("cpu", True) == get_config("cpu", quick=True)
    demo = notebook_config("cpu", False)
    assert demo.name == "cpu" and demo.epochs == CPU_DEMO["epochs"]
    assert demo.max_train_images == CPU_DEMO["max_train_images"]


def test_training_banner_says_plainly_what_a_run_is():
    cfg = notebook_config("cpu", True)
    text = training_banner(cfg, "cpu", True)
    assert "device: cpu" in text and "quick mode: on" in text and "NOT a shipped model" in text
    full = training_banner(get_config("default", quick=False), "cuda", False)
    assert "NOT" not in full and "the full 'default' recipe" in full


def test_live_history_plot_outside_ipython(capsys):
    live = LiveHistoryPlot()
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [0.9, 0.6],
                            "val_dice": [0.5, 0.7]})
    assert live(1, history.head(1)) is False
    assert live(2, history) is False
    assert live.calls == 2 and isinstance(live.figure, Figure)


def _tiny_checkpoint(path: Path) -> Path:
    cfg = get_config("cpu", quick=True)
    return save_checkpoint(path, build_model(cfg), cfg, epoch=3, metrics={"val_dice": 0.625})


def test_describe_checkpoint(tmp_path):
    text = describe_checkpoint(_tiny_checkpoint(tmp_path / "best.pt"))
    assert "preset 'cpu'" in text and "128x192 px" in text and "best epoch 3" in text
    assert "validation Dice 0.625" in text and "at most 48" in text


def test_notebook_checkpoint_prefers_shipped_then_notebook_04(tmp_path, monkeypatch):
    shipped = tmp_path / "weights" / "fetalhead_default.pt"
    monkeypatch.setattr(notebook_runs, "shipped_checkpoint", lambda model=None: shipped)
    monkeypatch.setattr(notebook_runs, "notebook_run_dir", lambda name="04_training": tmp_path / "runs" / name)
    ours = _tiny_checkpoint(tmp_path / "runs" / "04_training" / "best.pt")
    path, text = notebook_checkpoint(quick=True)
    assert path == ours and text.startswith("NOT the shipped GPU model")
    assert "runs/04_training/best.pt" in text
    _tiny_checkpoint(shipped)
    path, text = notebook_checkpoint(quick=True)
    assert path == shipped and text.startswith("the shipped model") and "NOT" not in text


@pytest.mark.skipif(not HAVE_DATA, reason="needs HC18_DIR")
def test_load_training_arrays_samples_across_the_split():
    cfg = get_config("cpu", quick=True, image_size=(32, 48), max_train_images=12, max_val_images=5)
    train, val = load_training_arrays(cfg)
    assert train.images.shape == (12, 32, 48) and val.images.shape == (5, 32, 48)
    assert set(train.meta["split"]) == {"train"} and set(val.meta["split"]) == {"val"}
    # a random sample, not the first files by name (which are all small, early heads)
    from fetalhead.split import load_split

    split = load_split()
    first = sorted(split.loc[split["split"] == "train", "filename"])[:12]
    assert sorted(train.meta["filename"]) != first
    again, _ = load_training_arrays(cfg)
    assert list(again.meta["filename"]) == list(train.meta["filename"])  # seeded


def test_notebook_checkpoint_trains_a_cpu_standin_once(tmp_path, monkeypatch):
    monkeypatch.setattr(notebook_runs, "shipped_checkpoint", lambda model=None: tmp_path / "none.pt")
    monkeypatch.setattr(notebook_runs, "notebook_run_dir", lambda name="04_training": tmp_path / "runs" / name)
    monkeypatch.setattr(notebook_runs, "load_training_arrays", lambda cfg, root=None: ("train", "val"))
    calls = []

    def fake_fit(cfg, train, val, out_dir, device=None, progress=True):
        calls.append((cfg.name, train, val, device))
        _tiny_checkpoint(Path(out_dir) / "best.pt")

    monkeypatch.setattr(notebook_runs, "fit", fake_fit)
    path, text = notebook_checkpoint(quick=True)
    assert path == tmp_path / "runs" / "cpu_standin" / "best.pt" and path.is_file()
    assert calls == [("cpu", "train", "val", "cpu")] and "stand-in just trained on the CPU" in text
    notebook_checkpoint(quick=True)
    assert len(calls) == 1  # the second call reuses the stand-in
