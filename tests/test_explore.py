"""Tests for fetalhead.explore: hand-made tables, NumPy oracles, Hadlock by hand."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from fetalhead.explore import (
    gestational_ages,
    image_size_counts,
    images_per_exam,
    plot_distributions,
    plot_hc_vs_ga,
    split_sizes,
    spread_rows,
    summary_table,
    trimester_counts,
)


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
