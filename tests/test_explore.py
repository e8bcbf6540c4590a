"""Tests for fetalhead.explore: hand-made tables, hand-computed receptive fields, real shapes."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from fetalhead import explore
from fetalhead.config import get_config
from fetalhead.explore import (
    CPU_DEMO,
    LiveHistoryPlot,
    compare_configs,
    describe_checkpoint,
    gestational_ages,
    image_size_counts,
    images_per_exam,
    layer_table,
    load_training_arrays,
    notebook_checkpoint,
    notebook_config,
    plot_distributions,
    plot_hc_vs_ga,
    receptive_field,
    save_notebook_figure,
    split_sizes,
    spread_rows,
    summary_table,
    training_banner,
    trimester_counts,
    unet_receptive_field,
)
from fetalhead.model import UNet, build_model, count_parameters
from fetalhead.train import save_checkpoint

HAVE_DATA = bool(os.environ.get("HC18_DIR")) and Path(os.environ["HC18_DIR"], "training_set").is_dir()


def test_images_per_exam_hand_made():
    df = pd.DataFrame({"exam": [1, 1, 2, 3, 3, 3, 4, 5]})
    table = images_per_exam(df)
    assert table.index.tolist() == [1, 2, 3]
    assert table["exams"].tolist() == [3, 1, 1]  # exams 2, 4, 5 have one image each
    assert table["images"].tolist() == [3, 2, 3]
    assert table["images"].sum() == len(df)


def test_summary_table_matches_numpy():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"pixel_size_mm": rng.uniform(0.05, 0.4, 50), "hc_mm": rng.uniform(40, 350, 50)})
    table = summary_table(df)
    assert table.index.tolist() == ["pixel_size_mm", "hc_mm"]
    assert table.loc["hc_mm", "mean"] == pytest.approx(df["hc_mm"].mean(), abs=1e-3)
    assert table.loc["pixel_size_mm", "max"] == pytest.approx(df["pixel_size_mm"].max(), abs=1e-3)
    assert table.loc["hc_mm", "std"] == pytest.approx(df["hc_mm"].std(ddof=1), abs=1e-3)


def test_split_sizes_hand_made():
    split = pd.DataFrame({
        "exam": [1, 1, 2, 3, 4, 5, 6, 6],
        "split": ["train", "train", "train", "val", "test", "challenge", "challenge", "challenge"],
    })
    table = split_sizes(split)
    assert table.index.tolist() == ["train", "val", "test", "challenge"]
    assert table["images"].tolist() == [3, 1, 1, 3]
    assert table["exams"].tolist() == [2, 1, 1, 2]
    assert table.loc["train", "fraction"] == pytest.approx(0.6)  # 3 of the 5 labelled images
    assert np.isnan(table.loc["challenge", "fraction"])


def test_layer_table_small_sequential():
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.ConvTranspose2d(3, 2, 2, stride=2), nn.Conv2d(2, 1, 1))
    table = layer_table(model, (2, 1, 10, 12))
    assert table["kind"].tolist() == ["conv 3x3", "up-conv 2x2", "conv 1x1"]
    assert table["out_shape"].tolist() == [(2, 3, 8, 10), (2, 2, 16, 20), (2, 1, 16, 20)]
    assert table["params"].tolist() == [1 * 3 * 9 + 3, 3 * 2 * 4 + 2, 2 + 1]
    assert table.index.tolist() == [1, 2, 3]


@pytest.mark.parametrize("padding, size, out", [("valid", 572, 388), ("same", 96, 96)])
def test_layer_table_unet(padding, size, out):
    model = UNet(base_channels=4, padding=padding)
    before = [p.clone() for p in model.parameters()]
    table = layer_table(model, (1, 1, size, size))
    assert len(table) == 23
    assert table["out_shape"].iloc[-1] == (1, 1, out, out)
    # every parameter of the U-Net except the BatchNorm scales and shifts sits in a conv
    bn = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert table["params"].sum() + bn == count_parameters(model)
    assert [c for *_, c, _, _ in table["out_shape"].iloc[:10]] == [4, 4, 8, 8, 16, 16, 32, 32, 64, 64]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(p.device.type == "cpu" for p in model.parameters())


def _chain(depth: int) -> nn.Sequential:
    """The deepest path of a depth-`depth` U-Net without skips: its receptive field is the net's."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(2)]
    layers += [nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1)]
    for _ in range(depth):
        layers += [nn.ConvTranspose2d(1, 1, 2, stride=2), nn.Conv2d(1, 1, 3, padding=1),
                   nn.Conv2d(1, 1, 3, padding=1)]
    return nn.Sequential(*layers, nn.Conv2d(1, 1, 1))


@pytest.mark.parametrize("model, expected", [
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 1, 3, padding=1)), 5),
    (nn.Sequential(nn.Conv2d(1, 1, 5, padding=2)), 5),
    # 1 -> conv: 3 -> 2x2 pool: 6 -> conv: 8 (by hand)
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(2, 1, 3, padding=1)), 8),
    # depth 1 by hand: 1 -> (1 + 4) // 2 + 1 = 3 -> +4 = 7 -> 2 * 7 + 4 = 18
    (_chain(1), 18),
])
def test_receptive_field_hand_computed(model, expected):
    assert receptive_field(model, size=48, phases=4) == expected


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_unet_receptive_field_matches_measured_chain(depth):
    assert unet_receptive_field(depth=depth) == receptive_field(_chain(depth), size=160, phases=2**depth)


def test_receptive_field_of_the_unet_is_204_and_model_untouched():
    model = UNet(base_channels=1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert unet_receptive_field() == 204
    assert receptive_field(model, size=224, phases=16) == 204
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_spread_rows_ends_and_median():
    df = pd.DataFrame({"hc_mm": [50.0, 10.0, 40.0, 20.0, 30.0, 60.0, 70.0]})
    assert spread_rows(df, 3)["hc_mm"].tolist() == [10.0, 40.0, 70.0]
    assert spread_rows(df, 7)["hc_mm"].tolist() == sorted(df["hc_mm"])
    assert spread_rows(df, 5)["hc_mm"].iloc[2] == spread_rows(df, 3)["hc_mm"].iloc[1] == 40.0


def test_image_size_counts_reads_headers(tmp_path):
    for i, (h, w) in enumerate([(20, 30), (20, 30), (10, 40)]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((h, w), np.uint8))
    table = image_size_counts(sorted(tmp_path.glob("*.png")))
    assert table.to_dict("records") == [{"width": 30, "height": 20, "images": 2},
                                        {"width": 40, "height": 10, "images": 1}]


def test_gestational_ages_and_trimesters():
    # Hadlock 1984 by hand: HC 10 cm -> 8.96 + 5.40 + 0.30 = 14.66 weeks
    ga = gestational_ages([100.0, 50.0, 300.0, float("nan")])
    assert ga["ga_weeks"].iloc[0] == pytest.approx(14.66)
    assert ga["trimester"].tolist() == ["second", "first", "third", "unknown"]
    assert ga["in_range"].tolist() == [True, False, True, False]
    table = trimester_counts([100.0, 50.0, 300.0, 310.0])
    assert table["images"].to_dict() == {"first": 1, "second": 1, "third": 2}
    assert table.loc["third", "hc_min_mm"] == 300.0


def test_plots_return_figures():
    df = pd.DataFrame({"pixel_size_mm": [0.1, 0.2, 0.15], "hc_mm": [60.0, 180.0, 300.0]})
    assert isinstance(plot_distributions(df), Figure) and len(plot_distributions(df).axes) == 2
    fig = plot_hc_vs_ga(df)
    assert isinstance(fig, Figure)
    assert len(fig.axes[0].get_legend().get_texts()) == 5  # range, curve, three trimesters


def test_save_notebook_figure_quick_mode_goes_to_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FETALHEAD_QUICK", "1")
    monkeypatch.setenv("FETALHEAD_CACHE", str(tmp_path))
    path = save_notebook_figure(plot_distributions(pd.DataFrame({"pixel_size_mm": [0.1], "hc_mm": [90.0]})),
                                "test_fig.png")
    assert path == tmp_path / "figures" / "test_fig.png" and path.stat().st_size > 0


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
    assert "NOT" not in full and "the full recipe" in full


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
    monkeypatch.setattr(explore, "shipped_checkpoint", lambda model=None: shipped)
    monkeypatch.setattr(explore, "notebook_run_dir", lambda name="04_training": tmp_path / "runs" / name)
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
    monkeypatch.setattr(explore, "shipped_checkpoint", lambda model=None: tmp_path / "none.pt")
    monkeypatch.setattr(explore, "notebook_run_dir", lambda name="04_training": tmp_path / "runs" / name)
    monkeypatch.setattr(explore, "load_training_arrays", lambda cfg, root=None: ("train", "val"))
    calls = []

    def fake_fit(cfg, train, val, out_dir, device=None, progress=True):
        calls.append((cfg.name, train, val, device))
        _tiny_checkpoint(Path(out_dir) / "best.pt")

    monkeypatch.setattr(explore, "fit", fake_fit)
    path, text = notebook_checkpoint(quick=True)
    assert path == tmp_path / "runs" / "cpu_standin" / "best.pt" and path.is_file()
    assert calls == [("cpu", "train", "val", "cpu")] and "stand-in just trained on the CPU" in text
    notebook_checkpoint(quick=True)
    assert len(calls) == 1  # the second call reuses the stand-in


def test_held_out_viewer_falls_back_to_the_demo_without_data(tmp_path):
    from fetalhead.explore import held_out_viewer

    v = held_out_viewer(n=3, root=tmp_path / "no_hc18")
    assert len(v) == 3 and v.current_filename.startswith("synthetic_")


def test_held_out_viewer_shows_real_test_images(hc18_dir):
    from fetalhead.explore import held_out_viewer
    from fetalhead.paths import shipped_checkpoint
    from fetalhead.split import load_split

    if not shipped_checkpoint().is_file():
        pytest.skip("no shipped weights")
    v = held_out_viewer(n=3, root=hc18_dir)
    test = set(load_split().query("split == 'test'")["filename"])
    assert len(v) == 3 and set(v.table()["filename"]) <= test
    assert v.current_stats.status in ("ok", "review") and v.current_stats.dice > 0.8
