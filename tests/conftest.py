"""Shared fixtures: the real HC18 folder, and a tiny synthetic HC18 folder for fast tests."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

SYNTH_SIZE = (64, 96)  # (H, W) pixels of the synthetic images


def write_synthetic_hc18(
    root: Path,
    size: tuple[int, int] = SYNTH_SIZE,
    per_part: int = 2,
    n_challenge: int = 3,
    outline: bool = False,
    seed: int = 0,
) -> Path:
    """Write a tiny HC18-like folder under `root` and return it.

    File names are real HC18 names taken from the committed split: the first `per_part`
    exams of train, val and test and one multi-frame train exam, with all their frames, and
    `n_challenge` test_set images. Each image is speckle with a brighter elliptical "head";
    its annotation is the ellipse FILLED as 3-channel 0/255 (like ../shared/hc18) or, with
    `outline`, a 1-channel one-pixel ring (like Zenodo). The training CSV's HC is the exact
    ellipse circumference (Ramanujan) times the pixel size. The ellipse parameters (pixels)
    are written to `ellipses.csv` beside the CSVs for tests that need them.
    """
    from fetalhead.data import TEST_CSV, TEST_DIR, TRAIN_CSV, TRAIN_DIR
    from fetalhead.split import load_split

    rng = np.random.default_rng(seed)
    h, w = size
    split = load_split()
    names: list[str] = []
    for part in ("train", "val", "test"):
        rows = split[split["split"] == part]
        exams = sorted(rows["exam"].unique())[:per_part]
        if part == "train":  # and one exam with several frames
            counts = rows["exam"].value_counts()
            exams.append(int(counts[counts > 1].index.min()))
        names += list(rows.loc[rows["exam"].isin(exams), "filename"])
    names.sort()
    (root / TRAIN_DIR).mkdir(parents=True, exist_ok=True)
    (root / TEST_DIR).mkdir(parents=True, exist_ok=True)

    def draw(path: Path) -> tuple[float, float, float, float, float]:
        cx, cy = w / 2 + rng.uniform(-4, 4), h / 2 + rng.uniform(-4, 4)
        # Small enough that no rotation takes the ellipse past the border.
        a, b = rng.uniform(0.2, 0.3) * w, rng.uniform(0.2, 0.3) * h
        angle = float(rng.uniform(0, 180))
        filled = np.zeros((h, w), np.uint8)
        cv2.ellipse(filled, ((cx, cy), (2 * a, 2 * b), angle), 1, -1)
        image = np.clip(rng.normal(40, 12, (h, w)) + 80 * filled, 0, 255).astype(np.uint8)
        cv2.imwrite(str(path), image)
        return cx, cy, a, b, angle

    rows, ellipses = [], []
    for i, name in enumerate(names):
        cx, cy, a, b, angle = draw(root / TRAIN_DIR / name)
        ann = np.zeros((h, w), np.uint8)
        box = ((cx, cy), (2 * a, 2 * b), angle)
        if outline:
            cv2.ellipse(ann, box, 255, 1)
        else:
            cv2.ellipse(ann, box, 255, -1)
            ann = np.repeat(ann[:, :, None], 3, axis=2)
        cv2.imwrite(str(root / TRAIN_DIR / name.replace(".png", "_Annotation.png")), ann)
        px = 0.1 + 0.01 * i
        hh = ((a - b) / (a + b)) ** 2
        circ = math.pi * (a + b) * (1 + 3 * hh / (10 + math.sqrt(4 - 3 * hh)))  # Ramanujan II
        rows.append((name, px, round(circ * px, 2)))
        ellipses.append((name, cx, cy, a, b, angle))
    pd.DataFrame(rows, columns=["filename", "pixel size(mm)", "head circumference (mm)"]).to_csv(
        root / TRAIN_CSV, index=False)
    pd.DataFrame(ellipses, columns=["filename", "cx", "cy", "a", "b", "angle_deg"]).to_csv(
        root / "ellipses.csv", index=False)
    test_rows = []
    for i in range(n_challenge):
        name = f"{i:03d}_HC.png"
        draw(root / TEST_DIR / name)
        test_rows.append((name, 0.2 + 0.01 * i))
    pd.DataFrame(test_rows, columns=["filename", "pixel size(mm)"]).to_csv(root / TEST_CSV, index=False)
    return root


@pytest.fixture
def hc18_dir() -> Path:
    """The real HC18 folder from $HC18_DIR (CI sets it); skips the test when it is unset."""
    value = os.environ.get("HC18_DIR")
    if not value:
        pytest.skip("HC18_DIR is not set")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"HC18_DIR={value} is not a folder")
    return path


@pytest.fixture
def synthetic_hc18(tmp_path: Path) -> Path:
    """A tiny HC18-like folder (64x96 images, filled 3-channel masks, both CSVs); see
    `write_synthetic_hc18`."""
    return write_synthetic_hc18(tmp_path / "hc18")


@pytest.fixture
def make_synthetic_hc18(tmp_path: Path):
    """Factory: `make_synthetic_hc18(outline=True, size=(48, 72), ...)` -> folder Path."""
    counter = iter(range(1000))

    def make(**kwargs) -> Path:
        return write_synthetic_hc18(tmp_path / f"hc18_{next(counter)}", **kwargs)

    return make


@pytest.fixture
def cache_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point $FETALHEAD_CACHE at a fresh folder so tests never share or pollute caches."""
    path = tmp_path / "cache"
    monkeypatch.setenv("FETALHEAD_CACHE", str(path))
    return path
